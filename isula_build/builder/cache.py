"""The build cache: per step key, the stage's state after that step, under <data_root>/cache/.

    cache/blobs/sha256/<hex>     the stage's upper dir after a step, as an uncompressed layer tar
                                 (layertar.write_layer with exact mtimes); content-addressed, so
                                 metadata steps and identical states share one
    cache/entries/<hex>.json     one per step key: parent key, blob, the StageConfig state, which
                                 history entry carries the layer, and the key's inputs (for the
                                 reason of a miss); its mtime is the last use (LRU)
    cache/parents/<hex>/<hex>    children of a parent key: where a miss looks for what differs
    cache/bases/<hex>.json       the image ID (and build settings) a FROM name last meant
    cache/images/<hex>.json      the `created` time of the image a build ending at a key made
    cache/tmp/                   files being written; emptied when the cache is opened

Every file is written in tmp/ and renamed into place, the blob before the entry naming it, so a
daemon killed at any moment leaves whole entries or none. An entry whose blob is gone (evicted)
is a miss. Blobs a running build is restoring are counted in memory and never evicted; the cache
belongs to one daemon process (the data root's lock), so a process-wide lock orders writers and
the collector. The collector (collect after each build, prune for `isula-build cache prune`)
also drops dangling entries, whose blob is gone, and never an entry whose blob is held;
usage() and size() are what `cache ls` and `info` show.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isula_build.builder.layertar import write_layer
from isula_build.errors import InternalError
from isula_build.store.extract import extract_layer
from isula_build.store.fsutil import replace_atomically

_log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = 30 * 24 * 3600
DEFAULT_SIZE_FRACTION = 0.20   # of the data root's filesystem


@dataclass(frozen=True)
class CacheEntry:
    key: str
    parent: str
    blob: str | None            # hex digest of the upper tar; None: the upper is empty
    config: dict[str, Any]      # StageConfig.state()
    layer_entry: int | None     # index in new_history of the last step that changed files
    inputs: dict[str, Any]      # what the key was made of, small (see stage.py's miss reasons)

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()


@dataclass(frozen=True)
class CacheUsage:
    """One entry as `isula-build cache ls` shows it."""

    key: str
    step: str                   # the instruction's text, when the entry recorded it
    blob: str | None
    size: int                   # bytes of its blob (several entries may share one)
    last_used: float            # seconds since the epoch
    in_use: bool                # a running build holds its blob


def _hex(key: str) -> str:
    """A file name for any key (keys are sha256:<hex>, or a base's `scratch`)."""
    return hashlib.sha256(key.encode()).hexdigest()


class BuildCache:
    """The cache of one data root (see the module docstring)."""

    def __init__(self, root: Path, max_size: int | None = None,
                 max_age: int = DEFAULT_MAX_AGE) -> None:
        self.root = root
        for sub in ("blobs/sha256", "entries", "parents", "bases", "images", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for leftover in (root / "tmp").iterdir():   # a killed daemon's half-written files
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink()
        if max_size is None:
            st = os.statvfs(root)
            max_size = int(st.f_blocks * st.f_frsize * DEFAULT_SIZE_FRACTION)
        self.max_size = max_size
        self.max_age = max_age
        self._lock = threading.Lock()
        self._in_use: Counter[str] = Counter()

    # --- paths ---------------------------------------------------------------------------

    def blob_path(self, hex_digest: str) -> Path:
        return self.root / "blobs" / "sha256" / hex_digest

    def _entry_path(self, key: str) -> Path:
        return self.root / "entries" / f"{_hex(key)}.json"

    # --- reading -------------------------------------------------------------------------

    def _read_entry(self, path: Path) -> CacheEntry | None:
        try:
            data = json.loads(path.read_bytes())
            return CacheEntry(**data)
        except (OSError, ValueError, TypeError):
            return None

    def lookup(self, key: str, hold: bool = False) -> CacheEntry | None:
        """The entry of `key` when it and its blob are there; marks it used. With `hold`, its
        blob is kept from eviction until release(entry)."""
        path = self._entry_path(key)
        entry = self._read_entry(path)
        if entry is None or entry.key != key:
            return None
        with self._lock:  # the collector cannot remove the blob between the check and the hold
            if entry.blob is not None:
                if not self.blob_path(entry.blob).is_file():
                    return None
                if hold:
                    self._in_use[entry.blob] += 1
        try:
            os.utime(path)
        except OSError:
            pass
        return entry

    def release(self, entry: CacheEntry) -> None:
        """Ends a hold of lookup(hold=True)."""
        if entry.blob:
            with self._lock:
                self._release(entry.blob)

    def _release(self, blob: str) -> None:
        self._in_use[blob] -= 1
        if not self._in_use[blob]:
            del self._in_use[blob]

    def siblings(self, parent: str) -> list[CacheEntry]:
        """Entries with parent key `parent`, most recently used first."""
        folder = self.root / "parents" / _hex(parent)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            path = self.root / "entries" / f"{name}.json"
            entry = self._read_entry(path)
            if entry is not None and entry.parent == parent:
                found.append((path.stat().st_mtime_ns, entry))
        return [entry for _, entry in sorted(found, key=lambda item: -item[0])]

    def restore_upper(self, entry: CacheEntry, upper: Path) -> None:
        """Makes `upper` (which must not exist) the upper dir the entry's step left: the tar is
        extracted as a lower dir is (whiteouts as 0:0 devices, opaque dirs as xattrs), into a
        scratch dir whose entries are then moved into an upper made as OverlayMount makes it."""
        upper.mkdir(parents=True)
        if entry.blob is None:
            return
        blob = self.blob_path(entry.blob)
        # Blobs are not fsynced (write_blob): the name is the content's digest, so a blob a
        # power loss left short or empty is caught here, removed, and never served.
        with open(blob, "rb") as f:
            actual = hashlib.file_digest(f, "sha256").hexdigest()
        if actual != entry.blob:
            blob.unlink(missing_ok=True)
            raise InternalError("a build cache entry this build needs was damaged (the machine "
                                "went down while it was written?) and has been removed; run the "
                                "build again")
        scratch = upper.parent / f".{upper.name}-restore"
        extract_layer(blob, scratch)
        for name in os.listdir(scratch):
            os.rename(scratch / name, upper / name)
        os.rmdir(scratch)

    # --- writing -------------------------------------------------------------------------

    def write_blob(self, upper: Path) -> str:
        """Stores the tar of `upper`; returns its hex digest."""
        fd, name = tempfile.mkstemp(prefix="blob-", dir=self.root / "tmp")
        tmp = Path(name)
        try:
            # No fsync: forcing a stage's whole upper to disk after every step doubled the time
            # of a cold COPY-heavy build. A daemon killed now leaves the data in the page
            # cache (whole); a blob a power loss damaged fails its digest when restored.
            with os.fdopen(fd, "wb") as out:
                stats = write_layer(upper, out, exact_mtimes=True)
            hex_digest = stats.diff_id.partition(":")[2]
            with self._lock:
                target = self.blob_path(hex_digest)
                if target.exists():
                    tmp.unlink()
                else:
                    os.rename(tmp, target)
                self._in_use[hex_digest] += 1   # until the entry naming it is written
            return hex_digest
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put(self, entry: CacheEntry, blob_written: bool = False) -> None:
        """Writes the entry (after its blob); `blob_written`: the blob came from write_blob."""
        try:
            with self._lock:
                replace_atomically(self._entry_path(entry.key), entry.to_json(), 0o600)
                children = self.root / "parents" / _hex(entry.parent)
                children.mkdir(exist_ok=True)
                (children / _hex(entry.key)).touch()
        finally:
            if blob_written and entry.blob:
                self.release(entry)

    def _small_record(self, folder: str, name: str) -> Path:
        return self.root / folder / f"{_hex(name)}.json"

    def base(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._small_record("bases", name).read_bytes())
        except (OSError, ValueError):
            return None

    def remember_base(self, name: str, image_id: str, settings: str) -> None:
        replace_atomically(self._small_record("bases", name),
                           json.dumps({"id": image_id, "settings": settings}).encode())

    def image_created(self, key: str) -> str | None:
        try:
            return str(json.loads(self._small_record("images", key).read_bytes())["created"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remember_image_created(self, key: str, created: str) -> None:
        replace_atomically(self._small_record("images", key),
                           json.dumps({"created": created}).encode())

    # --- eviction ------------------------------------------------------------------------

    def collect(self, max_size: int | None = None, max_age: int | None = None) -> int:
        """Evicts entries older than max_age, then the least recently used until the blobs
        they keep fit max_size; removes blobs no entry names. Returns bytes freed."""
        max_size = self.max_size if max_size is None else max_size
        max_age = self.max_age if max_age is None else max_age
        return self._evict(max_size, max_age, keep_empty=True)[1]

    def prune(self, everything: bool = False,
              keep_storage: int | None = None) -> tuple[int, int]:
        """Removes entries as `isula-build cache prune` asks; returns (entries removed, bytes
        freed). `everything`: every entry whose blob no running build holds; `keep_storage`:
        the least recently used until the blobs fit it (no age limit); neither: the configured
        limits (collect), plus dangling entries. Blobs no entry names go in every case."""
        if keep_storage is not None:
            return self._evict(keep_storage, None, keep_empty=not everything)
        if everything:
            return self._evict(0, None, keep_empty=False)
        return self._evict(self.max_size, self.max_age, keep_empty=True)

    def _evict(self, max_size: int, max_age: int | None,
               keep_empty: bool) -> tuple[int, int]:
        """Keeps, most recently used first, the entries younger than max_age whose blobs fit
        max_size (with those held), entries without a blob when `keep_empty`, and entries of
        held blobs; removes the others, dangling ones (blob gone) and unnamed blobs."""
        with self._lock:
            entries = []
            for item in os.scandir(self.root / "entries"):
                entry = self._read_entry(Path(item.path))
                entries.append((item.stat().st_mtime, Path(item.path), entry))
            entries.sort(key=lambda e: e[0], reverse=True)   # most recent first
            sizes = self._blob_sizes()
            now = time.time()
            kept: set[str] = set(self._in_use)
            total = sum(sizes.get(b, 0) for b in kept)
            removed = 0
            for used, path, entry in entries:
                if entry is not None and entry.blob in self._in_use:
                    continue
                blob = entry.blob if entry else None
                extra = sizes.get(blob, 0) if blob and blob not in kept else 0
                if (entry is None or (blob is not None and blob not in sizes)
                        or (max_age is not None and now - used > max_age)
                        or total + extra > max_size or (blob is None and not keep_empty)):
                    self._remove_entry(path, entry)
                    removed += 1
                    continue
                if blob:
                    kept.add(blob)
                    total += extra
            freed = 0
            for name, size in sizes.items():
                if name not in kept:
                    self.blob_path(name).unlink(missing_ok=True)
                    freed += size
            return removed, freed

    # --- showing -------------------------------------------------------------------------

    def usage(self) -> list[CacheUsage]:
        """Every readable entry, most recently used first, with the size of its blob."""
        with self._lock:
            sizes = self._blob_sizes()
            rows = []
            for item in os.scandir(self.root / "entries"):
                entry = self._read_entry(Path(item.path))
                if entry is None:
                    continue
                rows.append(CacheUsage(
                    key=entry.key, step=str(entry.inputs.get("text", "")),
                    blob=entry.blob, size=sizes.get(entry.blob, 0) if entry.blob else 0,
                    last_used=item.stat().st_mtime, in_use=entry.blob in self._in_use))
        return sorted(rows, key=lambda row: row.last_used, reverse=True)

    def size(self) -> int:
        """Bytes the cache's blobs take."""
        with self._lock:
            return sum(self._blob_sizes().values())

    def _blob_sizes(self) -> dict[str, int]:
        return {e.name: e.stat().st_size for e in os.scandir(self.root / "blobs" / "sha256")}

    def _remove_entry(self, path: Path, entry: CacheEntry | None) -> None:
        path.unlink(missing_ok=True)
        if entry is not None:
            (self.root / "parents" / _hex(entry.parent) / _hex(entry.key)).unlink(missing_ok=True)
            self._small_record("images", entry.key).unlink(missing_ok=True)


_caches: dict[Path, BuildCache] = {}
_caches_lock = threading.Lock()


def open_cache(data_root: Path, max_size: int | None = None,
               max_age: int = DEFAULT_MAX_AGE) -> BuildCache:
    """The process's one BuildCache of a data root (its in-use counts must be shared)."""
    root = (data_root / "cache").absolute()
    with _caches_lock:
        cache = _caches.get(root)
        if cache is None:
            cache = _caches[root] = BuildCache(root, max_size, max_age)
        return cache


__all__ = ["BuildCache", "CacheEntry", "CacheUsage", "open_cache"]
