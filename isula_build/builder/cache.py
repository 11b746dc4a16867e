"""The build cache: per step key, the stage's state after that step, under <data_root>/cache/.

    cache/snapshots/<id>/        the upper dir a step that changed files ran on (its changes over
                                 the steps before it), moved here as it was, never written again
    cache/entries/<hex>.json     one per step key: parent key, the stage's snapshots after the
                                 step (its chain, top first, with their sizes), the StageConfig
                                 state, which history entry carries the layer, the key's inputs
                                 (for the reason of a miss); its mtime is the last use (LRU)
    cache/parents/<hex>/<hex>    children of a parent key: where a miss looks for what differs
    cache/bases/<hex>.json       the image ID (and build settings) a FROM name last meant
    cache/images/<hex>.json      the `created` time of the image a build ending at a key made
    cache/layers/<hex>.json      the stage layer a stage ending at a key made (diff ID, chain)
    cache/links/<hex>.json       the snapshot a COPY/ADD --link step made, by its parent-free key
    cache/sealed.json            per boot, the time before which everything was synced to disk
    cache/tmp/                   files being written, trees being removed; emptied at open

A snapshot is a directory, so a hit mounts it as an overlay lower dir: nothing is extracted,
and a cold build pays only a rename. Every file is written in tmp/ and renamed into place, the
snapshot before the entry naming it, so a daemon killed at any moment leaves whole entries or
none. Nothing is fsynced on the build's path: a killed daemon leaves the page cache whole, and
a machine that went down loses what was not yet on disk, so an entry written in an earlier
boot after that boot's last seal (a syncfs after each build, seal()) is dropped at open.

The cache belongs to one daemon process (the data root's lock): the entries are indexed in
memory at open, and a process-wide lock orders writers, readers and the collector. Snapshots a
running build uses are counted (hold/release) and never removed; an entry whose snapshots are
gone is a miss, and removing an entry removes the entries below it, which no lookup can reach.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isula_build.store.fsutil import delete_tree, syncfs, tree_size, write_all

_log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = 30 * 24 * 3600
DEFAULT_SIZE_FRACTION = 0.20   # of the data root's filesystem


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    parent: str
    chain: list[list[Any]]      # the stage's snapshots after this step, top first: [id, size]
    config: dict[str, Any]      # StageConfig.state()
    layer_entry: int | None     # index in new_history of the last step that changed files
    inputs: dict[str, Any]      # what the key was made of, small (see stagecache's miss reasons)
    boot: str = BOOT_ID
    created: float = field(default_factory=time.time)

    @property
    def snapshots(self) -> list[str]:
        return [str(item[0]) for item in self.chain]

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()


@dataclass(frozen=True)
class CacheUsage:
    """One entry as `isula-build cache ls` shows it."""

    key: str
    step: str                   # the instruction's text, when the entry recorded it
    size: int                   # bytes of the snapshot this step added (0: it changed no file)
    last_used: float            # seconds since the epoch
    in_use: bool                # a running build holds its snapshots


@dataclass
class _Indexed:
    """What the collector and `cache ls` need of an entry, kept in memory."""

    parent: str
    chain: list[tuple[str, int]]
    text: str
    last_used: float


def _hex(key: str) -> str:
    """A file name for any key (keys are sha256:<hex>, or a base's `scratch`)."""
    return hashlib.sha256(key.encode()).hexdigest()


class BuildCache:
    """The cache of one data root (see the module docstring)."""

    def __init__(self, root: Path, max_size: int | None = None,
                 max_age: int = DEFAULT_MAX_AGE) -> None:
        self.root = root
        for sub in ("snapshots", "entries", "parents", "bases", "images", "layers", "links",
                    "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for leftover in os.scandir(root / "tmp"):   # a killed daemon's half-written files
            if leftover.is_dir(follow_symlinks=False):
                delete_tree(leftover.path, ignore_errors=True)
            else:
                os.unlink(leftover.path)
        if max_size is None:
            st = os.statvfs(root)
            max_size = int(st.f_blocks * st.f_frsize * DEFAULT_SIZE_FRACTION)
        self.max_size = max_size
        self.max_age = max_age
        self._lock = threading.Lock()
        self._in_use: Counter[str] = Counter()
        self._index: dict[str, _Indexed] = {}
        self._children: dict[str, set[str]] = {}
        self._sealing = self._seal_again = False
        self._load()

    # --- paths ---------------------------------------------------------------------------

    def snapshot_path(self, snapshot: str) -> Path:
        return self.root / "snapshots" / snapshot

    def _entry_path(self, key: str) -> Path:
        return self.root / "entries" / f"{_hex(key)}.json"

    # --- opening -------------------------------------------------------------------------

    def _load(self) -> None:
        """Indexes the entries; drops those a machine that went down may have lost (written in
        an earlier boot after its last seal) and snapshots no entry names (a killed daemon's)."""
        sealed = self._sealed()
        named: set[str] = set()
        for item in os.scandir(self.root / "entries"):
            entry = self._read_entry(Path(item.path))
            if entry is None or (entry.boot != BOOT_ID and entry.created > sealed.get(entry.boot, 0)):
                self._unlink_entry_files(Path(item.path), entry)
                continue
            self._add_to_index(entry, item.stat().st_mtime)
            named.update(entry.snapshots)
        for item in os.scandir(self.root / "snapshots"):
            if item.name not in named:
                delete_tree(item.path, ignore_errors=True)

    def _sealed(self) -> dict[str, float]:
        try:
            data = json.loads((self.root / "sealed.json").read_bytes())
            return {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def seal(self) -> None:
        """Makes everything written before now durable (syncfs of the cache's filesystem), then
        says so in sealed.json: after a power loss, entries up to that time are kept."""
        started = time.time()
        syncfs(self.root)
        with self._lock:
            sealed = self._sealed()
            sealed[BOOT_ID] = started
            self._write(self.root / "sealed.json", json.dumps(sealed).encode())

    def seal_in_background(self) -> None:
        """seal() on a thread of its own; while one runs, it runs once more after it instead
        of another starting (builds in a row need one syncfs, not one each)."""
        with self._lock:
            self._seal_again = self._sealing
            if self._sealing:
                return
            self._sealing = True

        def run() -> None:
            again = True
            while again:
                try:
                    self.seal()
                except OSError as exc:
                    _log.warning("build cache: cannot sync to disk: %s", exc)
                with self._lock:
                    again, self._seal_again = self._seal_again, False
                    self._sealing = again
        threading.Thread(target=run, name="cache-seal", daemon=True).start()

    def _write(self, target: Path, data: bytes) -> None:
        """Writes a small file in tmp/ and renames it into place: readers see the old file or
        the whole new one, and a killed daemon leaves a part only in tmp/ (emptied at open).
        Not fsynced: see seal()."""
        fd, name = tempfile.mkstemp(prefix="record-", dir=self.root / "tmp")
        try:
            try:
                write_all(fd, memoryview(data))
            finally:
                os.close(fd)
            os.rename(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    # --- reading -------------------------------------------------------------------------

    def _read_entry(self, path: Path) -> CacheEntry | None:
        try:
            data = json.loads(path.read_bytes())
            entry = CacheEntry(**data)
            if not all(isinstance(item, list) and len(item) == 2 for item in entry.chain):
                return None
            return entry
        except (OSError, ValueError, TypeError):
            return None

    def lookup(self, key: str, hold: bool = False) -> CacheEntry | None:
        """The entry of `key` when it and its snapshots are there; marks it used. With `hold`,
        its snapshots are kept from eviction until release(entry.snapshots)."""
        path = self._entry_path(key)
        entry = self._read_entry(path)
        if entry is None or entry.key != key:
            return None
        with self._lock:  # the collector cannot remove a snapshot between the check and the hold
            if key not in self._index or not all(
                    self.snapshot_path(s).is_dir() for s in entry.snapshots):
                return None
            if hold:
                self._in_use.update(entry.snapshots)
            self._index[key].last_used = time.time()
        try:
            os.utime(path)
        except OSError:
            pass
        return entry

    def entry(self, key: str) -> CacheEntry | None:
        """The entry of `key` as written, whether or not its snapshots are there; not marked
        used (the export of a shared cache reads the entries a build used)."""
        entry = self._read_entry(self._entry_path(key))
        return entry if entry is not None and entry.key == key else None

    def hold(self, snapshots: Iterable[str]) -> None:
        with self._lock:
            self._in_use.update(snapshots)

    def release(self, snapshots: Iterable[str]) -> None:
        """Ends holds (of lookup(hold=True), hold() or adopt())."""
        with self._lock:
            for snapshot in snapshots:
                self._in_use[snapshot] -= 1
                if self._in_use[snapshot] <= 0:
                    del self._in_use[snapshot]

    def siblings(self, parent: str) -> list[CacheEntry]:
        """Entries with parent key `parent`, most recently used first."""
        with self._lock:
            keys = sorted(self._children.get(parent, ()),
                          key=lambda k: -self._index[k].last_used)
        found = [self._read_entry(self._entry_path(k)) for k in keys]
        return [entry for entry in found if entry is not None and entry.parent == parent]

    # --- writing -------------------------------------------------------------------------

    def adopt(self, upper: Path, snapshot: str | None = None) -> tuple[str, Path, int]:
        """Moves a step's finished upper dir into the cache as a snapshot, held until
        release([id]); returns (id, its new path, its size). The upper must be on the cache's
        filesystem (both live under the data root). `snapshot`: the id to give it (a snapshot
        fetched from a shared cache is named after its blob); a new one by default."""
        size = tree_size(upper, on_disk=True)
        snapshot = snapshot or secrets.token_hex(16)
        target = self.snapshot_path(snapshot)
        with self._lock:
            os.rename(upper, target)
            self._in_use[snapshot] += 1
        return snapshot, target, size

    def put(self, entry: CacheEntry) -> None:
        """Writes the entry (after its snapshots)."""
        with self._lock:
            self._write(self._entry_path(entry.key), entry.to_json())
            children = self.root / "parents" / _hex(entry.parent)
            children.mkdir(exist_ok=True)
            (children / _hex(entry.key)).touch()
            self._add_to_index(entry, time.time())

    def _add_to_index(self, entry: CacheEntry, last_used: float) -> None:
        old = self._index.get(entry.key)
        if old is not None:
            self._children.get(old.parent, set()).discard(entry.key)
        self._index[entry.key] = _Indexed(entry.parent,
                                          [(str(s), int(n)) for s, n in entry.chain],
                                          str(entry.inputs.get("text", "")), last_used)
        self._children.setdefault(entry.parent, set()).add(entry.key)

    def _small_record(self, folder: str, name: str) -> Path:
        return self.root / folder / f"{_hex(name)}.json"

    def _read_record(self, folder: str, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._small_record(folder, name).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def base(self, name: str) -> dict[str, Any] | None:
        return self._read_record("bases", name)

    def remember_base(self, name: str, image_id: str, settings: str) -> None:
        self._write(self._small_record("bases", name),
                           json.dumps({"id": image_id, "settings": settings}).encode())

    def image_created(self, key: str) -> str | None:
        record = self._read_record("images", key)
        return str(record["created"]) if record and "created" in record else None

    def remember_image_created(self, key: str, created: str) -> None:
        self._write(self._small_record("images", key),
                           json.dumps({"created": created}).encode())

    def stage_layer(self, key: str, snapshots: list[str]) -> tuple[str, int] | None:
        """(diff ID, size) of the layer a stage ending at `key` on these snapshots made."""
        record = self._read_record("layers", key)
        if not record or record.get("snapshots") != snapshots:
            return None
        try:
            return str(record["diff_id"]), int(record["size"])
        except (KeyError, TypeError, ValueError):
            return None

    def remember_stage_layer(self, key: str, snapshots: list[str], diff_id: str,
                             size: int) -> None:
        self._write(self._small_record("layers", key), json.dumps(
            {"snapshots": snapshots, "diff_id": diff_id, "size": size}).encode())

    def linked(self, link_key: str) -> tuple[str, int] | None:
        """(snapshot, size) a COPY/ADD --link step with this key made, held until release;
        None when there is none (or it was evicted)."""
        record = self._read_record("links", link_key) or {}
        try:
            snapshot, size = str(record["snapshot"]), int(record["size"])
        except (KeyError, TypeError, ValueError):
            return None
        with self._lock:
            if not self.snapshot_path(snapshot).is_dir():
                return None
            self._in_use[snapshot] += 1
        return snapshot, size

    def remember_linked(self, link_key: str, snapshot: str, size: int) -> None:
        self._write(self._small_record("links", link_key),
                    json.dumps({"snapshot": snapshot, "size": size}).encode())

    # --- eviction ------------------------------------------------------------------------

    def collect(self, max_size: int | None = None, max_age: int | None = None) -> int:
        """Evicts entries older than max_age, then the least recently used until the snapshots
        they keep fit max_size; removes snapshots no entry names. Returns bytes freed."""
        max_size = self.max_size if max_size is None else max_size
        max_age = self.max_age if max_age is None else max_age
        return self._evict(max_size, max_age, keep_empty=True)[1]

    def prune(self, everything: bool = False,
              keep_storage: int | None = None) -> tuple[int, int]:
        """Removes entries as `isula-build cache prune` asks; returns (entries removed, bytes
        freed). `everything`: every entry whose snapshots no running build holds;
        `keep_storage`: the least recently used until the snapshots fit it (no age limit);
        neither: the configured limits (collect), plus dangling entries. Snapshots no entry
        names go in every case."""
        if keep_storage is not None:
            return self._evict(keep_storage, None, keep_empty=not everything)
        if everything:
            return self._evict(0, None, keep_empty=False)
        return self._evict(self.max_size, self.max_age, keep_empty=True)

    def _evict(self, max_size: int, max_age: int | None,
               keep_empty: bool) -> tuple[int, int]:
        """Keeps, most recently used first, the entries younger than max_age whose snapshots
        fit max_size (with those held), entries without snapshots when `keep_empty`, and
        entries whose snapshots are all held; removes the others, the entries below them,
        dangling ones (a snapshot gone) and unnamed snapshots."""
        doomed: list[Path] = []
        with self._lock:
            on_disk = set(os.listdir(self.root / "snapshots"))
            sizes = {s: n for info in self._index.values() for s, n in info.chain}
            kept: set[str] = {s for s in self._in_use if s in on_disk}
            total = sum(sizes.get(s, 0) for s in kept)
            now = time.time()
            remove: set[str] = set()
            for key, info in sorted(self._index.items(), key=lambda kv: -kv[1].last_used):
                if key in remove:
                    continue
                chain = [s for s, _ in info.chain]
                if chain and all(s in self._in_use for s in chain):
                    continue
                extra = sum(n for s, n in info.chain if s not in kept)
                if (any(s not in on_disk for s in chain)
                        or (max_age is not None and now - info.last_used > max_age)
                        or total + extra > max_size or (not chain and not keep_empty)):
                    remove.update(self._descendants(key))
                    continue
                kept.update(chain)
                total += extra
            for key in remove:
                self._remove_entry(key)
            freed = 0
            for snapshot in on_disk - kept:
                freed += sizes.get(snapshot, 0)
                doomed.append(self.root / "tmp" / f"evicted-{snapshot}")
                os.rename(self.snapshot_path(snapshot), doomed[-1])
        for path in doomed:    # outside the lock: a large tree takes a while to remove
            delete_tree(path, ignore_errors=True)
        return len(remove), freed

    def _descendants(self, key: str) -> set[str]:
        """`key` and every entry below it (lookups go down from a stage's first step, so
        none of them can be reached without it)."""
        found: set[str] = set()
        stack = [key]
        while stack:
            current = stack.pop()
            if current in found:
                continue
            found.add(current)
            stack.extend(k for k in self._children.get(current, ()) if k in self._index)
        return found & set(self._index)

    def _remove_entry(self, key: str) -> None:
        info = self._index.pop(key)
        self._children.get(info.parent, set()).discard(key)
        self._unlink_entry_files(self._entry_path(key), None, key=key, parent=info.parent)

    def _unlink_entry_files(self, path: Path, entry: CacheEntry | None, key: str = "",
                            parent: str = "") -> None:
        path.unlink(missing_ok=True)
        key, parent = (entry.key, entry.parent) if entry is not None else (key, parent)
        if key:
            (self.root / "parents" / _hex(parent) / _hex(key)).unlink(missing_ok=True)
            for folder in ("images", "layers"):
                self._small_record(folder, key).unlink(missing_ok=True)

    # --- showing -------------------------------------------------------------------------

    def usage(self) -> list[CacheUsage]:
        """Every entry, most recently used first, with the size of the snapshot it added."""
        with self._lock:
            rows = []
            for key, info in self._index.items():
                own = info.chain[0][1] if info.chain and self._owns_top(key, info) else 0
                rows.append(CacheUsage(key=key, step=info.text, size=own,
                                       last_used=info.last_used,
                                       in_use=any(s in self._in_use for s, _ in info.chain)))
        return sorted(rows, key=lambda row: row.last_used, reverse=True)

    def _owns_top(self, key: str, info: _Indexed) -> bool:
        """Whether the entry's step made the top snapshot of its chain (not a metadata step
        after it)."""
        parent = self._index.get(info.parent)
        return parent is None or not parent.chain or parent.chain[0][0] != info.chain[0][0]

    def size(self) -> int:
        """Bytes the cache's snapshots take."""
        with self._lock:
            sizes = {s: n for info in self._index.values() for s, n in info.chain}
            return sum(sizes.values())


_caches: dict[Path, BuildCache] = {}
_caches_lock = threading.Lock()


def open_cache(data_root: Path, max_size: int | None = None,
               max_age: int = DEFAULT_MAX_AGE) -> BuildCache:
    """The process's one BuildCache of a data root (its index and holds must be shared)."""
    root = (data_root / "cache").absolute()
    with _caches_lock:
        cache = _caches.get(root)
        if cache is None:
            cache = _caches[root] = BuildCache(root, max_size, max_age)
        return cache


__all__ = ["BOOT_ID", "BuildCache", "CacheEntry", "CacheUsage", "open_cache"]
