"""Temporaries beside outputs outside the data root, recorded so that a daemon killed midway
removes them at its next start.

An output appears at its path only complete, so until then it is written elsewhere on the same
filesystem. An archive file is usually written unnamed (transports/newfile.py) and needs no
record; what does need one is a hidden `.NAME.<random>.tmp` beside the target: an archive on a
filesystem without O_TMPFILE, the destination directory of a separated save (a directory cannot
be made unnamed), and the files replaced in the configuration directory (the public key,
auth.json: a rename is the only way to replace a file). Without a record such a temporary would
stay for ever after a SIGKILL.

A record is `<data_root>/inflight/<random>.json`: {"path", "kind": "file"|"dir", "dev", "ino"}.
It is written before the temporary is created (without dev and ino) and rewritten with them
once it is; nothing goes into the temporary before that. At start-up `start` removes what each
record names, but only the very inode recorded (or, from a record without one, an empty file
or directory: the daemon died before writing into it), so a file a user put at that name is
never touched; then the record goes.

The record directory is the process's (one daemon per data root; the store lock sees to that),
set once by `start` rather than passed down: every writer of an output, wherever it is called
from, records there, and none can be forgotten. A process that never calls `start` (the tests of
the writers, a library user) records nothing and still removes its temporaries on any error.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from isula_build.store.fsutil import fsync_dir, replace_atomically, write_all

_log = logging.getLogger(__name__)

DIRECTORY = "inflight"  # under the data root
_SUFFIX = ".json"
_FILE, _DIR = "file", "dir"
_ATTEMPTS = 100  # names tried, as mkstemp does

_T = TypeVar("_T")
_records: Path | None = None  # set by start(); None records nothing


def start(directory: Path) -> list[Path]:
    """Daemon start-up: removes what the records left in directory name, then records there
    from now on. Returns the temporaries removed."""
    global _records
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    removed = _sweep(directory)
    _records = directory
    return removed


def stop() -> None:
    """Records nothing from now on (for tests that called start)."""
    global _records
    _records = None


class Record:
    """One temporary being written; forget() once it is in place or removed."""

    def __init__(self, path: Path, kind: str, directory: Path | None) -> None:
        self.path = path
        self._kind = kind
        self._file = directory / f"{uuid.uuid4().hex}{_SUFFIX}" if directory else None

    def _write(self, identity: os.stat_result | None) -> None:
        if self._file is None:
            return
        document: dict[str, object] = {"path": str(self.path), "kind": self._kind}
        if identity is not None:
            document |= {"dev": identity.st_dev, "ino": identity.st_ino}
        replace_atomically(self._file, json.dumps(document).encode())
        # The record's name is on disk before the temporary's can be.
        fsync_dir(self._file.parent)

    def forget(self) -> None:
        if self._file is not None:
            self._file.unlink(missing_ok=True)


def new_file(target: Path) -> tuple[int, Record]:
    """A new empty 0600 file beside target, recorded, open for writing."""
    def create(path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)

    def discard(path: Path, fd: int) -> None:
        os.close(fd)
        path.unlink(missing_ok=True)
    return _new(target, _FILE, create, discard)


def new_dir(target: Path) -> Record:
    """A new empty 0700 directory beside target, recorded."""
    return _new(target, _DIR, lambda path: os.mkdir(path, 0o700),
                lambda path, _: path.rmdir())[1]


def replace_file(target: Path, data: bytes, mode: int = 0o600) -> None:
    """Writes target so that readers see the old file or the whole new one, through a recorded
    temporary (for files outside the data root; fsutil.replace_atomically for those inside)."""
    fd, record = new_file(target)
    try:
        try:
            write_all(fd, memoryview(data))
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(record.path, target)
    except BaseException:
        record.path.unlink(missing_ok=True)
        raise
    finally:
        record.forget()


def _new(target: Path, kind: str, create: Callable[[Path], _T],
         discard: Callable[[Path, _T], None]) -> tuple[_T, Record]:
    for _ in range(_ATTEMPTS):
        record = Record(target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp", kind,
                        _records)
        record._write(None)
        try:
            made = create(record.path)
        except FileExistsError:
            record.forget()
            continue
        except BaseException:
            record.forget()
            raise
        try:
            record._write(os.lstat(record.path))
        except BaseException:
            discard(record.path, made)
            record.forget()
            raise
        return made, record
    raise FileExistsError(f"no free temporary name beside {target}")


# ---------------------------------------------------------------------------------- start-up

def _sweep(directory: Path) -> list[Path]:
    removed = []
    for entry in os.scandir(directory):
        if entry.name.endswith(_SUFFIX) and not entry.name.startswith("."):
            try:
                gone = _remove_recorded(Path(entry.path))
            except OSError as exc:
                # Kept for the next start: the directory may be back then (an NFS share).
                _log.warning("cannot remove the temporary recorded in %s: %s", entry.path, exc)
                continue
            if gone is not None:
                _log.info("removed %s, left by a daemon stopped while writing it", gone)
                removed.append(gone)
        # The record itself, or the temporary of a record killed while being written.
        os.unlink(entry.path)
    return removed


def _remove_recorded(record: Path) -> Path | None:
    """Removes the temporary a record names when it is still the one recorded."""
    try:
        document = json.loads(record.read_bytes())
        path, kind = Path(document["path"]), document["kind"]
        identity = (document["dev"], document["ino"]) if "ino" in document else None
    except (ValueError, KeyError, TypeError):
        _log.warning("ignoring the malformed record %s", record)
        return None
    if not path.is_absolute() or kind not in (_FILE, _DIR):
        _log.warning("ignoring the malformed record %s", record)
        return None
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        remove = _remove_dir if kind == _DIR else _remove_file
        return path if remove(parent, path.name, identity) else None
    finally:
        os.close(parent)


def _same(st: os.stat_result, identity: tuple[int, int] | None) -> bool:
    return identity is not None and (st.st_dev, st.st_ino) == identity


def _remove_file(parent: int, name: str, identity: tuple[int, int] | None) -> bool:
    try:
        st = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return False  # renamed into place, or removed
    if not stat.S_ISREG(st.st_mode):
        return False
    if not (_same(st, identity) or (identity is None and st.st_size == 0)):
        return False
    os.unlink(name, dir_fd=parent)
    return True


def _remove_dir(parent: int, name: str, identity: tuple[int, int] | None) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link has the name now
            return False
        raise
    try:
        entries = os.listdir(fd)
        if not (_same(os.fstat(fd), identity) or (identity is None and not entries)):
            return False
        # Through the descriptor checked above, so only what is inside our directory goes.
        for entry in entries:
            if stat.S_ISDIR(os.lstat(entry, dir_fd=fd).st_mode):
                shutil.rmtree(entry, dir_fd=fd)
            else:
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)
    return True
