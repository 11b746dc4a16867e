"""Helpers of the separated-image tests: layer tars, and images in a real Store made by importing
a root filesystem tarball (the base) and composing layered images with the store's writer."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from isula_build.store import ImageRecord, Store
from isula_build.transports.copy import copy_image
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination


def make_tar(files: dict[str, bytes]) -> bytes:
    """A tar of regular files (with their parent directories), fixed times."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                directory = "/".join(parts[:i])
                if directory not in made:
                    made.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_600_000_000
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


def import_rootfs(store: Store, path: Path, name: str) -> ImageRecord:
    with ImportSource(path) as src, StoreDestination(store, [name]) as dst:
        image_id = copy_image(src, dst, lambda line: None)
    return store.lookup(image_id)


def compose(store: Store, parent: ImageRecord, layer: bytes, name: str) -> ImageRecord:
    """A new image: parent's layers plus one, written through the store's writer."""
    config = json.loads(store.config_bytes(parent.id))
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config["rootfs"] = {"type": "layers",
                        "diff_ids": [l.diff_id for l in parent.layers] + [diff_id]}
    config["history"] = [*config.get("history", []), {"created_by": f"layer of {name}"}]
    config.setdefault("config", {})["Labels"] = {"image": name}
    with store.writer() as writer:
        for l in parent.layers:
            assert writer.has_layer(l.diff_id)
        writer.put_layer(io.BytesIO(layer), expected_diff_id=diff_id)
        writer.put_config(json.dumps(config).encode())
        return writer.commit([name])


@dataclass
class Images:
    base: ImageRecord
    lib: ImageRecord
    app1: ImageRecord
    app2: ImageRecord
    other: ImageRecord   # built on the base, not on the lib


def build_images(store: Store, root: Path) -> Images:
    rootfs = root / "rootfs.tar"
    rootfs.write_bytes(make_tar({"etc/os-release": b"NAME=isb-test\n",
                                 "bin/tool": bytes(range(256)) * 512}))
    base = import_rootfs(store, rootfs, "isb-test-base:1")
    lib = compose(store, base, make_tar({"usr/lib/libx.so": b"\x7fELF" + b"l" * 50_000}),
                  "isb-test-lib:1")
    app1 = compose(store, lib, make_tar({"app/one": b"first app\n" * 100}), "isb-test-app1:latest")
    app2 = compose(store, lib, make_tar({"app/two": b"second app\n" * 100}), "example.io/team/app2:v2")
    other = compose(store, base, make_tar({"app/other": b"not on the lib\n"}), "isb-test-other:1")
    return Images(base, lib, app1, app2, other)


class Log(list):
    def __call__(self, line: str) -> None:
        assert "\n" not in line
        self.append(line)


def no_cancel() -> None:
    """The cancellation check of a request nobody cancels."""
