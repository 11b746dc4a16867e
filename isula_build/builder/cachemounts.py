"""`RUN --mount=type=cache` directories: kept across builds of this daemon, never in an image.

    <data_root>/cache/mounts/<hex>/info.json   the cache's id and what it was seeded from
    <data_root>/cache/mounts/<hex>/<n>/        an instance of it: what RUN sees at the target
    <data_root>/cache/mounts/<hex>/<n>.lock    flock of instance n; its mtime is the last use

`<hex>` is the sha256 of the id and the cache's origin (the `from` stage or image key, the
`source` in it, mode, uid, gid), as BuildKit keeps a cache per id and base. Sharing, with one
flock per instance: `shared` holds instance 0 with LOCK_SH, so any number of builds use it at
once; `locked` holds it with LOCK_EX, so builds using the id run that step one at a time;
`private` takes the first instance no build holds (LOCK_EX without waiting), making a new one
when all are in use. An instance is made under its exclusive lock in `<n>.new` (seeded from
`from`, given mode and owner) and renamed into place, so a daemon killed midway leaves only a
`.new` that the next maker removes. The lock files' inodes are checked after locking, because
pruning unlinks them; the daemon owns the data root alone, so a process-wide lock orders
making and unlinking them.

`cache_mount_usage`, `cache_mount_rows` and `prune_cache_mounts` are what `cache ls`, `info`
and `cache prune` add to the build cache's own figures; pruning never takes an instance a
build holds.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from isula_build.errors import Cancelled
from isula_build.store.fsutil import delete_tree, tree_size

# Orders making lock files and directories against pruning's unlinking (one daemon per root).
# Reentrant: pruning tries a lock (which opens the file under it) while holding it.
_REGISTRY = threading.RLock()
_WAIT = 0.05  # seconds between tries while another build holds a locked cache


def mounts_root(data_root: Path) -> Path:
    return data_root / "cache" / "mounts"


def cache_dir_name(cache_id: str, origin: str) -> str:
    """The directory of a cache: one per id and origin (see the module docstring)."""
    return hashlib.sha256(repr(("cache-mount", cache_id, origin)).encode()).hexdigest()


@dataclass(frozen=True)
class CacheMountRequest:
    cache_id: str
    origin: str                          # from-key, source, mode, uid, gid: a new origin, a new cache
    sharing: str = "shared"              # shared | private | locked
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    seed: Callable[[Path], None] | None = None   # fills a new instance (from= contents)


def _open_lock(path: Path) -> int:
    with _REGISTRY:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _still_named(fd: int, path: Path) -> bool:
    """Whether `path` still names the lock file open as `fd` (pruning may have unlinked it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _try_lock(path: Path, how: int) -> int | None:
    """The descriptor of `path` locked `how` (LOCK_SH/LOCK_EX), or None when another holds it."""
    while True:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        if _still_named(fd, path):
            return fd
        os.close(fd)


def _lock(path: Path, how: int, cancel: threading.Event, waiting: Callable[[], None]) -> int:
    """`path` locked `how`, waiting (cancellably) while another build holds it."""
    told = False
    while True:
        fd = _try_lock(path, how)
        if fd is not None:
            return fd
        if not told:
            waiting()
            told = True
        if cancel.wait(_WAIT):
            raise Cancelled("the build was cancelled")


def _make_instance(folder: Path, n: int, request: CacheMountRequest) -> None:
    """Makes instance n if it is missing; the caller holds its exclusive lock."""
    final = folder / str(n)
    if final.exists():
        return
    new = folder / f"{n}.new"
    if new.exists():
        delete_tree(new, ignore_errors=True)   # a killed daemon's half-made instance
    new.mkdir(mode=0o700)
    try:
        if request.seed is not None:
            request.seed(new)
        os.chown(new, request.uid, request.gid)
        os.chmod(new, request.mode)
        os.rename(new, final)
    except BaseException:
        delete_tree(new, ignore_errors=True)
        raise


@contextmanager
def cache_mount(data_root: Path, request: CacheMountRequest, cancel: threading.Event,
                log: Callable[[str], None]) -> Iterator[Path]:
    """The directory to mount for `request`, held (per its sharing) until the block ends."""
    folder = mounts_root(data_root) / cache_dir_name(request.cache_id, request.origin)
    info = folder / "info.json"

    def waiting() -> None:
        log(f"waiting for cache mount {request.cache_id!r}: another build holds it")

    n = 0
    if request.sharing == "private":
        while (fd := _try_lock(folder / f"{n}.lock", fcntl.LOCK_EX)) is None:
            n += 1
    elif request.sharing == "shared":
        fd = _lock(folder / "0.lock", fcntl.LOCK_SH, cancel, waiting)
        if not (folder / "0").is_dir():   # the first use: made under the exclusive lock
            os.close(fd)
            fd = _lock(folder / "0.lock", fcntl.LOCK_EX, cancel, waiting)
    else:
        fd = _lock(folder / "0.lock", fcntl.LOCK_EX, cancel, waiting)
    try:
        if not info.exists():
            info.write_text(json.dumps({"id": request.cache_id, "origin": request.origin}))
        _make_instance(folder, n, request)
        if request.sharing == "shared":
            # Made: now others may use it at the same time. flock converts by unlocking first;
            # under the registry lock pruning cannot take the instance in that moment.
            with _REGISTRY:
                fcntl.flock(fd, fcntl.LOCK_SH)
        yield folder / str(n)
    finally:
        try:
            os.utime(fd)   # the last use, for pruning by age
        finally:
            os.close(fd)


@dataclass(frozen=True)
class CacheMountRow:
    name: str          # <hex>/<n>
    cache_id: str
    size: int
    in_use: bool
    last_used: float   # seconds since the epoch


def _instances(data_root: Path) -> Iterator[tuple[Path, str, str]]:
    """(cache folder, instance number, cache id) of every instance on disk."""
    root = mounts_root(data_root)
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        try:
            cache_id = str(json.loads((folder / "info.json").read_text()).get("id", ""))
        except (OSError, ValueError):
            cache_id = ""
        for lock in sorted(folder.glob("*.lock")):
            yield folder, lock.name.removesuffix(".lock"), cache_id


def cache_mount_rows(data_root: Path) -> list[CacheMountRow]:
    rows = []
    for folder, n, cache_id in _instances(data_root):
        lock = folder / f"{n}.lock"
        fd = _try_lock(lock, fcntl.LOCK_EX)
        if fd is not None:
            os.close(fd)
        try:
            last_used = os.stat(lock).st_mtime
        except FileNotFoundError:
            continue
        rows.append(CacheMountRow(f"{folder.name}/{n}", cache_id, tree_size(folder / n),
                                  fd is None, last_used))
    return rows


def cache_mount_usage(data_root: Path) -> int:
    """Bytes the cache mounts hold (the build cache's size counts them)."""
    return sum(tree_size(folder / n) for folder, n, _ in _instances(data_root))


def prune_cache_mounts(data_root: Path, max_age: float | None = None) -> tuple[int, int]:
    """Removes every instance no build holds (with `max_age`, only those unused for longer
    than that many seconds); returns (instances removed, bytes freed)."""
    removed = freed = 0
    now = time.time()
    for folder, n, _ in list(_instances(data_root)):
        lock = folder / f"{n}.lock"
        with _REGISTRY:
            fd = _try_lock(lock, fcntl.LOCK_EX)
        if fd is None:
            continue   # a build holds it
        try:
            if max_age is not None and now - os.fstat(fd).st_mtime <= max_age:
                continue
            freed += tree_size(folder / n)
            for leftover in (folder / n, folder / f"{n}.new"):
                if leftover.exists():
                    delete_tree(leftover, ignore_errors=True)
            with _REGISTRY:
                lock.unlink()
                if not any(folder.glob("*.lock")):
                    (folder / "info.json").unlink(missing_ok=True)
                    try:
                        folder.rmdir()
                    except OSError:
                        pass
            removed += 1
        finally:
            os.close(fd)
    return removed, freed


__all__ = ["CacheMountRequest", "CacheMountRow", "cache_dir_name", "cache_mount",
           "cache_mount_rows", "cache_mount_usage", "mounts_root", "prune_cache_mounts"]
