"""Helpers of the store tests: layer tars built entry by entry, and images made from them."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

from isula_build.store import ImageRecord, Store


@dataclass
class Entry:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_600_000_000
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, str] = field(default_factory=dict)


def file(name: str, data: bytes = b"", **kw: object) -> Entry:
    return Entry(name, tarfile.REGTYPE, data, **kw)  # type: ignore[arg-type]


def directory(name: str, **kw: object) -> Entry:
    kw.setdefault("mode", 0o755)
    return Entry(name, tarfile.DIRTYPE, **kw)  # type: ignore[arg-type]


def symlink(name: str, target: str, **kw: object) -> Entry:
    kw.setdefault("mode", 0o777)
    return Entry(name, tarfile.SYMTYPE, linkname=target, **kw)  # type: ignore[arg-type]


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.LNKTYPE, linkname=target)


def chardev(name: str, major: int, minor: int, **kw: object) -> Entry:
    return Entry(name, tarfile.CHRTYPE, devmajor=major, devminor=minor, **kw)  # type: ignore[arg-type]


def fifo(name: str) -> Entry:
    return Entry(name, tarfile.FIFOTYPE)


def make_tar(*entries: Entry) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.linkname, info.mode = e.type, e.linkname, e.mode
            info.uid, info.gid, info.mtime = e.uid, e.gid, e.mtime
            info.devmajor, info.devminor = e.devmajor, e.devminor
            info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.type == tarfile.REGTYPE:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return out.getvalue()


def diff_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_config(layers: list[bytes], created: str | None = "2024-05-06T07:08:09.123456789Z",
                extra: dict | None = None) -> bytes:
    config: dict = {"architecture": "amd64", "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": [diff_id(l) for l in layers]}}
    if created is not None:
        config["created"] = created
    config.update(extra or {})
    return json.dumps(config, sort_keys=True).encode()


def add_image(store: Store, layers: list[bytes], names: list[str],
              extra: dict | None = None) -> ImageRecord:
    """Puts the layers and a config through one writer and commits it."""
    with store.writer() as w:
        for layer in layers:
            # Pinned when stored: a concurrent remove cannot take it away before the commit.
            if not w.pin_layers([diff_id(layer)]):
                w.put_layer(io.BytesIO(layer), expected_diff_id=diff_id(layer))
        w.put_config(make_config(layers, extra=extra))
        return w.commit(names)
