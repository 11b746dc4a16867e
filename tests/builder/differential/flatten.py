"""Flattens an image into one file tree model, without extracting anything to disk.

Used for both sides of the differential tests (docker's `docker save` and our `ctr-img save`):
the layers of a docker-archive are applied in order into a dict keyed by path, following the
rules container engines use when they apply a layer (whiteouts, opaque directories, a
non-directory replacing a whole subtree), and each path keeps what the tests compare: type,
permission bits, owner, size, content hash, link target.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

# The config fields the differential tests compare (the rest is volatile or derived).
CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "ExposedPorts", "Volumes", "User", "WorkingDir",
                 "StopSignal", "Healthcheck", "Shell", "OnBuild", "Labels")

_TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}


@dataclass(frozen=True)
class Entry:
    """One path of the flattened tree. `mode` is the permission bits (with setuid/gid/sticky)."""

    type: str
    mode: str
    uid: int
    gid: int
    size: int = 0
    sha256: str | None = None
    link: str | None = None
    device: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Entry:
        return Entry(**data)


Tree = dict[str, Entry]


def normalize(name: str) -> str:
    """A tar member name as an absolute, clean path ("./a/b/" -> "/a/b")."""
    path = posixpath.normpath("/" + name.lstrip("/"))
    return "/" if path == "//" else path


def _remove_subtree(tree: Tree, path: str) -> None:
    tree.pop(path, None)
    prefix = path.rstrip("/") + "/"
    for p in [p for p in tree if p.startswith(prefix)]:
        del tree[p]


def _hash(stream: IO[bytes] | None) -> str:
    h = hashlib.sha256()
    if stream is not None:
        while chunk := stream.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def apply_layer(tree: Tree, layer: IO[bytes]) -> None:
    """Applies one (uncompressed or compressed) layer tar stream onto `tree`.

    Deletions (whiteouts, opaque markers) act on what the lower layers left, so they are
    applied before this layer's own entries: in a tar the marker may come after entries of the
    same directory, and those must survive.
    """
    added: list[tuple[str, Entry]] = []
    whiteouts: list[str] = []
    opaque: list[str] = []
    with tarfile.open(fileobj=layer, mode="r|*") as tar:
        for member in tar:
            path = normalize(member.name)
            base = posixpath.basename(path)
            parent = posixpath.dirname(path)
            if base == OPAQUE_MARKER:
                opaque.append(parent)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                whiteouts.append(posixpath.join(parent, base[len(WHITEOUT_PREFIX):]))
                continue
            if path == "/":
                continue  # the root directory's own metadata is not part of the comparison
            added.append((path, _entry(member, tar, path, added)))
    for d in opaque:
        prefix = d.rstrip("/") + "/"
        for p in [p for p in tree if p.startswith(prefix)]:
            del tree[p]
    for p in whiteouts:
        _remove_subtree(tree, p)
    for path, entry in added:
        old = tree.get(path)
        if old is not None and not (old.type == "dir" and entry.type == "dir"):
            _remove_subtree(tree, path)
        if entry.type == "hardlink-pending":
            target = tree.get(entry.link or "")
            assert target is not None, f"hard link {path} to missing {entry.link}"
            entry = target
        tree[path] = entry


def _entry(member: tarfile.TarInfo, tar: tarfile.TarFile, path: str,
           added: list[tuple[str, Entry]]) -> Entry:
    mode = f"{member.mode & 0o7777:04o}"
    if member.type == tarfile.LNKTYPE:
        # A hard link is, in the flattened tree, a regular file with its target's content;
        # whether a builder kept the link or wrote a copy is a layer-encoding detail.
        target = normalize(member.linkname)
        for p, e in reversed(added):
            if p == target:
                return e
        return Entry("hardlink-pending", mode, member.uid, member.gid, link=target)
    kind = _TYPES.get(member.type)
    assert kind is not None, f"unexpected tar entry type {member.type!r} for {path}"
    if kind == "file":
        return Entry("file", mode, member.uid, member.gid, member.size,
                     _hash(tar.extractfile(member)))
    if kind == "symlink":
        return Entry("symlink", mode, member.uid, member.gid, link=member.linkname)
    if kind in ("char", "block"):
        return Entry(kind, mode, member.uid, member.gid, device=f"{member.devmajor}:{member.devminor}")
    return Entry(kind, mode, member.uid, member.gid)


@dataclass
class FlatImage:
    """What an image is to the differential tests: its flattened tree and its config fields."""

    config: dict[str, Any]
    author: str | None
    tree: Tree

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config, "author": self.author,
                "files": {p: e.to_json() for p, e in sorted(self.tree.items())}}

    @staticmethod
    def from_json(data: dict[str, Any]) -> FlatImage:
        return FlatImage(data["config"], data["author"],
                         {p: Entry.from_json(e) for p, e in data["files"].items()})


def config_fields(config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The compared fields of an image config; an absent field and a null one are the same."""
    inner = config.get("config") or {}
    fields = {k: inner[k] for k in CONFIG_FIELDS if inner.get(k) is not None}
    return fields, config.get("author") or None


def flatten_archive(archive: Path, index: int = 0) -> FlatImage:
    """Flattens image `index` of a docker-archive (manifest.json listing Config and Layers)."""
    with tarfile.open(archive, "r:") as outer:
        members = {normalize(m.name): m for m in outer.getmembers()}

        def read(name: str) -> IO[bytes]:
            f = outer.extractfile(members[normalize(name)])
            assert f is not None, f"{name} is not a file in {archive}"
            return f

        manifest = json.load(read("manifest.json"))[index]
        config = json.load(read(manifest["Config"]))
        tree: Tree = {}
        for layer in manifest["Layers"]:
            apply_layer(tree, read(layer))
    fields, author = config_fields(config)
    return FlatImage(fields, author, tree)


def flatten_layer_tar(path: Path) -> Tree:
    """The tree of a single root filesystem tar (the busybox base)."""
    tree: Tree = {}
    with open(path, "rb") as f:
        apply_layer(tree, f)
    return tree
