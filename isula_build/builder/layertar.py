"""Turns a finished stage's overlayfs upper directories into one layer tar.

Each step of a stage that changes files runs on an upper dir of its own over the steps before
it (stage.py: the build cache keeps each as a snapshot); the stage's one layer is their squash,
as one upper dir holding all the steps' changes would have it (_walk).

overlayfs records deletions as character devices 0:0 and replaced directories as directories with
the xattr trusted.overlay.opaque=y; image layers say the same with `.wh.NAME` and `.wh..wh..opq`
entries (the OCI image spec's whiteouts, as docker's overlay driver writes them).

The tar is reproducible: entries in sorted order (parents first), numeric owners without user or
group names, no access or change times, and with `mtime` every timestamp set to it, so identical
trees give identical bytes whatever the umask or the day.  Long names use PAX headers, as the
layer tars docker and BuildKit write (containerd's archive package) do.  Output streams straight
to `out` while it is hashed, so no layer is ever held in memory. Written to a file
(write_layer_file), the layer comes with a VerifiedLayerFile for the store, which then links the
file in instead of reading it again.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from isula_build.errors import InternalError, InvalidArgument
from isula_build.image.layerfile import VerifiedLayerFile
from isula_build.image.tarsafety import TarStreamChecker

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# Large chunks keep the per-chunk Python overhead negligible next to hashing and writing.
_CHUNK = 1 << 20
# overlayfs bookkeeping and host security labels describe the host, not the image.
_SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")


@dataclass(frozen=True)
class LayerStats:
    diff_id: str        # "sha256:<hex>" of the uncompressed tar
    size: int           # bytes written
    # write_layer_file only, when the store's tar checker accepted every entry
    verified: VerifiedLayerFile | None = None


class _LayerOutput:
    """The tar stream on its way to `out`: hashed, counted and run through the store's own
    TarStreamChecker in the same pass, in large chunks. Small entries are gathered into one
    buffer, so a layer of many small files costs a few large writes, not thousands.

    Chunks are written on a thread of their own while the next ones are read, checked and
    hashed (writing and hashing release the GIL), one write in flight at a time.

    A tar the checker refuses is still written (an earlier stage's layer never reaches the
    store, and the store refuses it with the same message when it does): it is only not
    verified."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pending = bytearray()
        self.digest = hashlib.sha256()
        self.checker: TarStreamChecker | None = TarStreamChecker()
        self.size = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="layer-writer")
        self._writing: Future[object] | None = None

    def _write_out(self, data: bytes | bytearray | memoryview) -> None:
        """Hands data to the writer thread once the write before it is done (so a buffer
        handed over two writes ago may be filled again)."""
        self._wait()
        self._writing = self._pool.submit(self._out.write, data)

    def _wait(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def close(self) -> None:
        """Waits for the last write and ends the writer thread."""
        try:
            self._wait()
        finally:
            self._pool.shutdown()

    def add(self, data: bytes | bytearray | memoryview) -> None:
        self._pending += data
        if len(self._pending) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            data, self._pending = self._pending, bytearray()   # the writer owns it now
            self._account(data)
            self._write_out(data)

    def _account(self, data: bytes | bytearray | memoryview) -> None:
        """Checks, hashes and counts bytes on their way out."""
        if self.checker is not None:
            try:
                self.checker.feed(data)
            except InvalidArgument:
                self.checker = None
        self.digest.update(data)  # releases the GIL for large chunks
        self.size += len(data)

    def add_entry(self, info: tarfile.TarInfo) -> None:
        """A header-only entry (or one whose data follows through add_file_data)."""
        self.add(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))

    def add_file_data(self, name: str, fd: int, size: int) -> None:
        """Exactly `size` bytes of fd, then the padding to a whole block (as tarfile.addfile)."""
        if size < _CHUNK:
            data = _read_exact(name, fd, size)
            self.add(data)
        else:
            self.flush()
            self._add_large(name, fd, size)
        remainder = size % tarfile.BLOCKSIZE
        if remainder:
            self.add(bytes(tarfile.BLOCKSIZE - remainder))

    def _add_large(self, name: str, fd: int, size: int) -> None:
        """A large file in 1 MiB chunks read straight into two buffers taking turns."""
        buffers = (bytearray(_CHUNK), bytearray(_CHUNK))
        left, turn = size, 0
        while left:
            # The buffer of this turn was handed over two writes ago: that write is done.
            view = memoryview(buffers[turn])[:min(left, _CHUNK)]
            _readinto_exact(name, fd, view)
            self._account(view)
            self._write_out(view)
            left -= len(view)
            turn = 1 - turn

    def finish(self) -> None:
        """The end-of-archive blocks and the padding to a whole record, as tarfile.close()."""
        end = 2 * tarfile.BLOCKSIZE
        self.add(bytes(end + -(self.size + len(self._pending) + end) % tarfile.RECORDSIZE))
        self.flush()
        self._wait()
        if self.checker is not None:
            try:
                self.checker.finish()
            except InvalidArgument:
                self.checker = None

    @property
    def safe(self) -> bool:
        """Whether the store's tar checker accepted every entry."""
        return self.checker is not None


def _open_nofollow(path: Path) -> int:
    """Opens a file of the upper dir for reading without updating its access time (an atime
    not newer than the mtime, as the copier leaves it, would cost an inode write per file)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOATIME)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # O_NOATIME needs owner or CAP_FOWNER


def _read_exact(name: str, fd: int, size: int) -> bytes:
    data = os.read(fd, size) if size else b""
    if len(data) < size:  # a short first read: read the rest in a loop
        rest = bytearray(data)
        while len(rest) < size:
            chunk = os.read(fd, size - len(rest))
            if not chunk:
                raise InternalError(f"cannot commit {name}: the file shrank while it was read")
            rest += chunk
        data = bytes(rest)
    return data


def _readinto_exact(name: str, fd: int, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if not n:
            raise InternalError(f"cannot commit {name}: the file shrank while it was read")
        got += n


def _walk(tops: list[Path], base: list[Path]) -> Iterator[tuple[str, Path, os.stat_result, bool]]:
    """(relative name, path, lstat, opaque) of the squash of `tops` (overlay upper dirs, TOP
    FIRST, each the changes of one step over those below it) over `base` (the stage's lower
    dirs, top first): what one upper dir holding all the steps' changes would hold. Names
    sorted, parents first; `path` is in the topmost upper that has the name.

    A name's topmost upper decides what it is. A whiteout (0:0 device) or an opaque directory
    hides what the uppers below have; either is kept only when `base` has the name, since only
    then is there something in the image below to hide (a single upper would not have it
    either: overlayfs removes a file the upper alone had). A directory's children are those of
    the uppers down to the first that is opaque or has no directory there.

    A depth-first walk with a stack of its own, not recursion: a RUN can make a tree deeper
    than Python's recursion limit."""
    # One iterator of children per directory being listed, innermost last.
    stack: list[Iterator[tuple[str, list[Path]]]] = [_children("", tops)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        rel_name, paths = child      # the name in each upper that has it, top first
        path = paths[0]
        st = os.lstat(path)
        # Only a name several uppers have needs the check: in one upper alone, overlayfs made
        # the whiteout or opaque directory because the layers below had the name.
        shared = len(paths) > 1
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            if not shared or _in_base(base, rel_name):
                yield rel_name, path, st, False
            continue
        if not stat.S_ISDIR(st.st_mode):
            yield rel_name, path, st, False
            continue
        sources: list[Path] = []
        opaque = False
        for source in paths:
            if source is not path and not stat.S_ISDIR(os.lstat(source).st_mode):
                break
            sources.append(source)
            if is_opaque(source):
                opaque = True
                break
        yield rel_name, path, st, opaque and (not shared or _in_base(base, rel_name))
        stack.append(_children(rel_name, sources))


def _children(rel: str, dirs: list[Path]) -> Iterator[tuple[str, list[Path]]]:
    """The union of the entries of `dirs` (top first), sorted, each with the dirs' paths of it."""
    if len(dirs) == 1:   # the common case: one upper, or a directory only one step touched
        for name in sorted(os.listdir(dirs[0])):
            yield (f"{rel}/{name}" if rel else name), [dirs[0] / name]
        return
    found: dict[str, list[Path]] = {}
    for directory in dirs:
        for name in os.listdir(directory):
            found.setdefault(name, []).append(directory / name)
    for name in sorted(found):
        yield (f"{rel}/{name}" if rel else name), found[name]


def is_opaque(path: Path) -> bool:
    """Whether overlayfs marked the directory opaque (it hides the lower dirs' one)."""
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _in_base(base: list[Path], rel: str) -> bool:
    """Whether the merged view of the lower dirs `base` (top first) has `rel`."""
    parts = rel.split("/")
    for lower in base:
        hides_below = False   # an opaque directory of this lower on the way down
        for depth in range(1, len(parts) + 1):
            path = lower.joinpath(*parts[:depth])
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if hides_below:
                    return False
                break   # nothing of it here: the lowers below decide
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return False   # a whiteout: deleted here, whatever is below
            if depth == len(parts):
                return True
            if not stat.S_ISDIR(st.st_mode):
                return False   # a file here hides the lowers' directory
            hides_below = hides_below or is_opaque(path)
    return False


def _read_xattrs(path: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found: dict[str, bytes] = {}
    for name in sorted(names):
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return found


def _pax_xattrs(xattrs: dict[str, bytes]) -> dict[str, str]:
    # tarfile writes str values back as the original bytes (hdrcharset=BINARY when needed).
    return {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
            for k, v in xattrs.items() if not k.startswith(_SKIPPED_XATTR_PREFIXES)}


def _check_overlay_features(name: str, xattrs: dict[str, bytes]) -> None:
    """Refuses uppers whose content lives partly in the lower layers."""
    for prefix in ("trusted.overlay.", "user.overlay."):
        if prefix + "metacopy" in xattrs:
            raise InternalError(f"cannot commit {name}: overlay metacopy is on; mount the stage "
                                f"with metacopy=off")
        if prefix + "redirect" in xattrs:
            raise InternalError(f"cannot commit {name}: overlay redirect_dir is on; mount the "
                                f"stage with redirect_dir=off")


def _base_info(name: str, st: os.stat_result, mtime: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.uname = ""
    info.gname = ""
    # Whole seconds: a fractional mtime would make tarfile add a PAX record per entry.
    info.mtime = mtime if mtime is not None else int(st.st_mtime)
    return info


def write_layer(upper: Path | list[Path], out: BinaryIO, *, base: list[Path] | None = None,
                mtime: int | None = None) -> LayerStats:
    """Writes the layer tar of the overlay upper directory `upper` to `out`; given a list of
    upper dirs (top first, one a step, over the stage's lower dirs `base`), of their squash
    (see _walk). The bytes are those tarfile writes in PAX format ("w|" mode)."""
    layer = _write(_tops(upper), base or [], out, mtime)
    return LayerStats(diff_id="sha256:" + layer.digest.hexdigest(), size=layer.size)


def write_layer_file(upper: Path | list[Path], path: Path, *, base: list[Path] | None = None,
                     mtime: int | None = None) -> LayerStats:
    """write_layer into a new file at `path`. When the store's tar checker accepted the layer,
    the stats carry it as a VerifiedLayerFile: the store's writer links that file in
    (put_verified_layer) instead of reading, hashing and checking it a second time."""
    with open(path, "wb") as out:
        layer = _write(_tops(upper), base or [], out, mtime)
        out.flush()
        diff_id = "sha256:" + layer.digest.hexdigest()
        verified = None
        if layer.safe:
            verified = VerifiedLayerFile.of_written_file(out.fileno(), path, diff_id, layer.size)
    return LayerStats(diff_id, layer.size, verified)


def _tops(upper: Path | list[Path]) -> list[Path]:
    return [upper] if isinstance(upper, Path) else upper


def _write(tops: list[Path], base: list[Path], out: BinaryIO, mtime: int | None) -> _LayerOutput:
    layer = _LayerOutput(out)
    try:
        _write_entries(layer, tops, base, mtime)
    finally:
        layer.close()
    return layer


def _write_entries(layer: _LayerOutput, tops: list[Path], base: list[Path],
                   mtime: int | None) -> None:
    links: dict[tuple[int, int], str] = {}
    for name, path, st, opaque in _walk(tops, base):
        info = _base_info(name, st, mtime)
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            head, _, leaf = name.rpartition("/")
            info.name = f"{head}/{WHITEOUT_PREFIX}{leaf}" if head else WHITEOUT_PREFIX + leaf
            info.type = tarfile.REGTYPE
            info.mode = 0o600
            layer.add_entry(info)
            continue
        if stat.S_ISSOCK(mode):
            continue  # sockets live only while their server runs; docker drops them too
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in links:
                info.type = tarfile.LNKTYPE
                info.linkname = links[key]
                layer.add_entry(info)
                continue
            links[key] = name
        xattrs = _read_xattrs(path)
        _check_overlay_features(name, xattrs)
        info.pax_headers = {**info.pax_headers, **_pax_xattrs(xattrs)}
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            info.name = name + "/"
            layer.add_entry(info)
            if opaque:
                marker = _base_info(f"{name}/{OPAQUE_MARKER}", st, mtime)
                marker.type = tarfile.REGTYPE
                layer.add_entry(marker)
        elif stat.S_ISREG(mode):
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            fd = _open_nofollow(path)
            try:
                layer.add_entry(info)
                layer.add_file_data(name, fd, info.size)
            finally:
                os.close(fd)
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
            layer.add_entry(info)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
            layer.add_entry(info)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
            layer.add_entry(info)
    layer.finish()
