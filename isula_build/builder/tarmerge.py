"""A stage's layer made from its steps' snapshot tars, without the directories: the merge of
disjoint snapshots.

A stage's layer is the squash of its steps' upper dirs (layertar._walk). When no two of them
have a top-level name in common, every name of the squash comes from exactly one upper (an
upper holds the parent directories of all it changed, so sharing any name means sharing the
top-level one), and the squash walks each name's subtree as that upper's own walk does: the
layer's entries are then the snapshots' tar entries (layertar.write_layer of each upper, the
blobs a shared cache holds), byte for byte, taken in the order of their top-level names. That is
what merge_snapshots does, entry by entry from streams, so a builder served wholly by a shared
cache rebuilds the stage's layer from the snapshots it exported instead of a second copy of the
same bytes in the registry (builder/remotecache.py). The result is only trusted once its
digest is the layer's diff ID the exporter recorded.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from isula_build.builder.layertar import OPAQUE_MARKER, WHITEOUT_PREFIX
from isula_build.errors import InvalidArgument
from isula_build.image.tarsafety import (BLOCK, HEADER_ONLY_TYPES, MAX_META_SIZE, META_TYPES,
                                         padding, parse_header, parse_pax)
from isula_build.store.pipe import CHUNK


def disjoint(tops: list[Path]) -> bool:
    """Whether no two of the upper dirs have a top-level name in common."""
    seen: set[str] = set()
    for top in tops:
        names = set(os.listdir(top))
        if names & seen:
            return False
        seen |= names
    return True


class _Entry:
    """The next entry of one snapshot tar: its header blocks (extended headers included), the
    top-level name it sorts by, and the data blocks still to be read."""

    def __init__(self, header: bytes, top: str, data: int) -> None:
        self.header = header
        self.top = top
        self.data = data


class _Snapshot:
    def __init__(self, stream: BinaryIO, what: str) -> None:
        # A pipeline's chunks (registry/pipeline.py) are taken as they are: data passes through
        # as views of them, never copied here.
        self._read_chunk: Callable[[], bytes | bytearray] = getattr(
            stream, "read_chunk", lambda: stream.read(CHUNK))
        self._chunk = memoryview(b"")
        self._what = what
        self.entry: _Entry | None = self._next()

    def _view(self, most: int) -> memoryview:
        """Up to `most` next bytes (at least one), as a view of the chunk they are in."""
        if not self._chunk:
            self._chunk = memoryview(self._read_chunk())
            if not self._chunk:
                raise InvalidArgument(f"{self._what}: the tar ends inside an entry")
        view, self._chunk = self._chunk[:most], self._chunk[most:]
        return view

    def _read(self, size: int) -> bytes:
        """Exactly `size` bytes (headers: small)."""
        parts = []
        while size:
            part = self._view(size)
            parts.append(part)
            size -= len(part)
        return b"".join(parts)

    def _next(self) -> _Entry | None:
        headers: list[bytes] = []
        path: str | None = None
        while True:
            block = self._read(BLOCK)
            if block == bytes(BLOCK):
                if headers:
                    raise InvalidArgument(f"{self._what}: an extended header without an entry")
                return None
            try:
                name, type_, size, _ = parse_header(block)
            except ValueError:
                raise InvalidArgument(f"{self._what}: a bad tar header") from None
            headers.append(block)
            if type_ not in META_TYPES:
                break
            if size > MAX_META_SIZE:
                raise InvalidArgument(f"{self._what}: a {size}-byte extended header")
            payload = self._read(size + padding(size))
            headers.append(payload)
            if type_ in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                records = parse_pax(payload[:size])
                if "size" in records:   # never written by layertar: not a snapshot of ours
                    raise InvalidArgument(f"{self._what}: an extended size record")
                path = records.get("path", path)
            elif type_ == tarfile.GNUTYPE_LONGNAME:
                path = payload[:size].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        full = (path if path is not None else name).rstrip("/")
        top, _, rest = full.partition("/")
        if not rest and top.startswith(WHITEOUT_PREFIX) and top != OPAQUE_MARKER:
            top = top[len(WHITEOUT_PREFIX):]   # the walk sorts a whiteout by the name it hides
        data = 0 if type_ in HEADER_ONLY_TYPES else size
        return _Entry(b"".join(headers), top, data + padding(data))

    def take(self) -> Iterator[bytes | memoryview]:
        """The current entry's bytes; then the next entry becomes current."""
        entry = self.entry
        assert entry is not None
        yield entry.header
        left = entry.data
        while left:
            view = self._view(left)
            left -= len(view)
            yield view
        self.entry = self._next()


def merge_snapshots(streams: list[BinaryIO], what: str) -> Iterator[bytes | memoryview]:
    """The layer tar of the squash of disjoint snapshots, from their tars (any order): the runs
    of entries of each top-level name, in name order, then the end-of-archive blocks and the
    padding to a whole record, as layertar writes them. InvalidArgument for a stream that is
    not such a tar, or snapshots that share a top-level name."""
    snapshots = [_Snapshot(stream, f"{what}, part {n + 1}") for n, stream in enumerate(streams)]
    size = 0
    last: str | None = None
    while True:
        tops = [(s.entry.top, n) for n, s in enumerate(snapshots) if s.entry is not None]
        if not tops:
            break
        top, n = min(tops)
        if top == last:
            raise InvalidArgument(f"{what}: two snapshots have {top!r}")
        current = snapshots[n]
        while current.entry is not None and current.entry.top == top:
            for chunk in current.take():
                size += len(chunk)
                yield chunk
        last = top
    end = 2 * BLOCK
    yield bytes(end + -(size + end) % tarfile.RECORDSIZE)


__all__ = ["disjoint", "merge_snapshots"]
