"""The build cache shared through a registry: `--cache-from` imports, `--cache-to` exports.

Import. At the start of a build each --cache-from reference's document is read (manifest and
config: a few KiB), on a thread of its own while the build pulls its base; one written by
another isula-builder version or for another platform is ignored, as is one that cannot be
read, each with one warning line. A step key the local cache
lacks is then looked up in the documents: a record found is a hit whose snapshots are named
after their blobs (`snapshots/<blob hex>`) and fetched only when a mount or the stage's layer
needs them (materialize(), which the build calls before every mount of lower dirs), verified
against the blob digest and the tar's diff ID, unpacked (store/extract.py turns `.wh.` entries
back into overlay whiteouts) and adopted into the local cache, whose entry is written once all
the record's snapshots are there: a second build needs no download. A stage served wholly
whose layer the image needs downloads that stage layer (fetch_stage_layer) instead of its
snapshots, so a fresh builder fetches no more layer bytes than a pull of the image; a stage
served wholly whose layer nothing needs (a builder stage the final stage only copies from)
downloads nothing. A snapshot that cannot be fetched raises SharedCacheLost: the build starts
again without the shared cache (one warning line), served by what the local cache has by then.

Export. After a successful build, the entries of the steps it used (`max`: every stage's,
`min`: the target stage and the stages it is built FROM, what the final image needs) are
written to the --cache-to reference: each snapshot as a gzip tar of the upper dir (layertar.py,
streamed from the directory through gzip to the registry, as soon as its step ends, while the
build goes on), the layers of the stages the image is made of (as an image push sends them;
left to the push when the build pushes its image; not at all for a stage of disjoint snapshots,
whose layer is their merge, tarmerge.py: an importer merges them), then the config, then the
manifest.
A snapshot pushed once is remembered (`cache/exported/<snapshot>.json`: its blob), so the
next export asks the registry (HEAD) or mounts it from the source repository instead of
compressing it again. Failing to export is a warning, never a failed build.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import isula_build
from isula_build.builder.cache import BuildCache, CacheEntry
from isula_build.builder.layertar import LayerStats, write_layer
from isula_build.builder.tarmerge import disjoint, merge_snapshots
from isula_build.distribution.cachedoc import (CacheBlob, CacheDocument, CacheRecord, CacheTo,
                                               MergedLayer, parse_cache_to)
from isula_build.distribution.cacheremote import CacheRepository
from isula_build.dockerfile.plan import automatic_platform_args
from isula_build.errors import InvalidArgument, IsulaBuildError, Unimplemented
from isula_build.image.layerfile import VerifiedLayerFile
from isula_build.registry.gzipper import gzip_stream
from isula_build.registry.settings import RegistrySettings
from isula_build.store.extract import extract_layer
from isula_build.store.fsutil import delete_tree, tree_size
from isula_build.store.pipe import ChunkSource, copy_checked_tar

_log = logging.getLogger(__name__)

WARNING = "[Warning] "
_CHUNK = 1 << 20
_EXPORTED = "exported"


class SharedCacheLost(IsulaBuildError):
    """A snapshot of an imported record could not be fetched (the registry went away, or sent
    something else than the digest says): the build starts again without the shared cache."""


def cache_platform() -> str:
    """The platform the steps run for (a cache of another one is not used)."""
    return automatic_platform_args()["TARGETPLATFORM"]


class _ChunkStream:
    """Pieces made on this thread, read as copy_checked_tar reads a pipeline's chunks: large
    ones as they are, small ones (headers, small files) gathered into chunks of up to 1 MiB,
    so the writer's thread is not handed a write per tar header."""

    def __init__(self, pieces: Iterator[bytes | memoryview]) -> None:
        self._pieces = pieces

    def read_chunk(self) -> bytes | bytearray | memoryview:
        gathered = bytearray()
        for piece in self._pieces:
            if not gathered and len(piece) >= _CHUNK // 4:
                return piece
            gathered += piece
            if len(gathered) >= _CHUNK:
                break
        return gathered


def _write_layer_file(stream: BinaryIO | ChunkSource, path: Path, diff_id: str,
                      mismatch: str) -> VerifiedLayerFile | None:
    """A fetched stage layer's tar written to `path` as a pull stores a layer (downloading,
    decompressing, checking, and hashing with writing, each on a thread of its own), trusted
    only with the diff ID the cache recorded."""
    with open(path, "wb") as out:
        digest, size = copy_checked_tar(stream, out.fileno(), uncached=True)   # as a pull
        if f"sha256:{digest}" != diff_id:
            raise InvalidArgument(f"{mismatch} sha256:{digest}, the cache says {diff_id}")
        _log.info("shared cache: fetched stage layer %s (%d bytes)", diff_id, size)
        return VerifiedLayerFile.of_written_file(out.fileno(), path, diff_id, size)


class _Source:
    """One --cache-from document."""

    def __init__(self, repo: CacheRepository, document: CacheDocument) -> None:
        self.repo = repo
        self.document = document
        self.children: dict[str, list[CacheRecord]] = {}
        for record in document.records.values():
            self.children.setdefault(record.parent, []).append(record)


# One fetch of a snapshot at a time in the process, whichever build asks (builds share the cache).
_fetch_locks: dict[Path, threading.Lock] = {}
_fetch_locks_lock = threading.Lock()


def _fetch_lock(path: Path) -> threading.Lock:
    with _fetch_locks_lock:
        return _fetch_locks.setdefault(path, threading.Lock())


class SharedCache:
    """A build's --cache-from documents and its --cache-to target (see the module docstring).
    Snapshots it adopts are handed to `hold` (the build's holds, released when it ends)."""

    def __init__(self, cache: BuildCache, settings: RegistrySettings | None,
                 cache_from: list[str], cache_to: str, log: Callable[[str], None],
                 hold: Callable[[Iterable[str]], None], push_layers: bool = True,
                 platform: str | None = None) -> None:
        if settings is None:
            raise Unimplemented("--cache-from and --cache-to need the daemon's registry settings")
        self.cache = cache
        self.settings = settings
        self.target: CacheTo | None = parse_cache_to(cache_to) if cache_to else None
        self.imports = bool(cache_from)   # --cache-from: the stages pull their bases meanwhile
        self.log = log
        self.hold = hold
        self.platform = platform or cache_platform()   # the steps' platform (--platform)
        # Push stage layers as soon as they are written; not when the build pushes its image
        # (-o docker://): the export then finds them in the registry instead of sending them.
        self._push_layers = push_layers
        self._sources: list[_Source] = []
        self._pending: dict[str, tuple[_Source, CacheBlob]] = {}   # snapshot id -> its blob
        self._hits: dict[str, CacheEntry] = {}   # served from a source, not yet in the cache
        self._lock = threading.Lock()
        # --cache-to: blobs pushed while the build goes on (a snapshot as soon as its step
        # ends, a stage layer once written), waited for by export().
        self._uploads: dict[str, Future[CacheBlob]] = {}
        # Stage layers that are the merge of their snapshots: diff ID -> the snapshots.
        self._merged: dict[str, list[str]] = {}
        self._target_repo: CacheRepository | None = None
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="cache-export") \
            if self.target is not None else None
        # The documents are read while the build pulls its base image; the first lookup
        # waits for them (_ready).
        self._loading: threading.Thread | None = None
        if cache_from:
            self._loading = threading.Thread(target=self._open_all, args=(cache_from,),
                                             name="cache-from", daemon=True)
            self._loading.start()

    # --- import -------------------------------------------------------------------------

    def _open_all(self, names: list[str]) -> None:
        for name in names:
            try:
                self._open(name)
            except Exception as exc:   # on this thread, nothing else would ever report it
                _log.exception("--cache-from %s", name)
                self._warn(f"--cache-from {name}: {exc}; building without it")

    def _open(self, name: str) -> None:
        try:   # the reference itself was checked before the build (builder.py)
            repo = CacheRepository(self.settings, name)
            document = repo.read()
        except (IsulaBuildError, OSError) as exc:
            self._warn(f"--cache-from {name}: {exc}; building without it")
            return
        if document.version != isula_build.__version__:
            self._warn(f"--cache-from {name} was written by isula-builder {document.version}, "
                       f"this is {isula_build.__version__}: not used")
        elif document.platform != self.platform:
            self._warn(f"--cache-from {name} was built for {document.platform}, this build is "
                       f"for {self.platform}: not used")
        else:
            self._sources.append(_Source(repo, document))

    def _ready(self) -> list[_Source]:
        """The documents read (waiting for them the first time)."""
        if self._loading is not None:
            self._loading.join()
        return self._sources

    def _warn(self, text: str) -> None:
        _log.warning("%s", text)
        self.log(WARNING + text)

    def lookup(self, key: str) -> CacheEntry | None:
        """The imported record of `key` as a cache entry, its snapshots named after their
        blobs (fetched by materialize() when needed); None when no document has it."""
        for source in self._ready():
            record = source.document.records.get(key)
            if record is not None:
                entry = self._as_entry(source, record)
                with self._lock:
                    self._hits[key] = entry
                return entry
        return None

    def siblings(self, parent: str) -> list[CacheEntry]:
        """Imported records of parent key `parent` (for the reason of a miss)."""
        return [self._as_entry(source, record, pending=False) for source in self._ready()
                for record in source.children.get(parent, [])]

    def _as_entry(self, source: _Source, record: CacheRecord, pending: bool = True) -> CacheEntry:
        chain = []
        for digest in record.chain:
            blob = source.document.blobs[digest]
            snapshot = digest.partition(":")[2]
            chain.append([snapshot, blob.unpacked])
            if pending and not self.cache.snapshot_path(snapshot).is_dir():
                with self._lock:
                    self._pending.setdefault(snapshot, (source, blob))
        return CacheEntry(record.key, record.parent, chain, record.config, record.layer_entry,
                          record.inputs)

    def created(self, key: str) -> str | None:
        """The `created` time of the image a build ending at `key` made, when a document says."""
        for source in self._ready():
            if key in source.document.created:
                return source.document.created[key]
        return None

    def fetch_stage_layer(self, key: str, path: Path) -> VerifiedLayerFile | None:
        """The layer of a stage ending at `key` that a document has, downloaded into `path`
        (an uncompressed tar, checked against the blob's digest and diff ID and by the store's
        tar checker); None when no document has it."""
        for source in self._ready():
            digest = source.document.stage_layers.get(key)
            merged = source.document.merged_layers.get(key)
            if digest is None and merged is None:
                continue
            try:
                if digest is not None:
                    return self._download_layer(source, source.document.blobs[digest], path)
                assert merged is not None
                return self._merge_layer(source, merged, path)
            except (IsulaBuildError, OSError) as exc:
                raise SharedCacheLost(f"--cache-from {source.repo.name}: cannot fetch the "
                                      f"layer of stage {key}: {exc}") from None
        return None

    def _merge_layer(self, source: _Source, merged: MergedLayer,
                     path: Path) -> VerifiedLayerFile | None:
        """The stage layer made from its snapshots' blobs, downloaded at once and merged as
        they arrive."""
        with ExitStack() as streams:
            parts = [streams.enter_context(source.repo.open_snapshot(source.document.blobs[d]))
                     for d in merged.parts]
            pieces = merge_snapshots(parts, f"the layer {merged.diff_id}")
            return _write_layer_file(_ChunkStream(pieces), path, merged.diff_id,
                                     "its snapshots merge to diff ID")

    def _download_layer(self, source: _Source, blob: CacheBlob,
                        path: Path) -> VerifiedLayerFile | None:
        with source.repo.open_snapshot(blob) as stream:
            return _write_layer_file(stream, path, blob.diff_id, "its tar has diff ID")

    def disable(self) -> None:
        """Stops serving imported records (after SharedCacheLost)."""
        self._ready()
        self._sources = []
        with self._lock:
            self._pending.clear()
            self._hits.clear()

    def materialize(self, paths: list[Path]) -> None:
        """Fetches the snapshots among `paths` (lower dirs about to be mounted or read) that
        imported hits named and are not on disk yet, then saves the entries now complete."""
        snapshots = self.cache.snapshot_path("x").parent
        for path in paths:
            if path.parent != snapshots:
                continue
            with self._lock:
                item = self._pending.get(path.name)
            if item is not None:
                self._fetch(path, *item)
        self._save_complete()

    def _fetch(self, path: Path, source: _Source, blob: CacheBlob) -> None:
        with _fetch_lock(path):
            if not path.is_dir():
                tmp = self.cache.root / "tmp" / f"fetch-{path.name}-{secrets.token_hex(4)}"
                try:
                    self._download(source, blob, tmp)
                    self.cache.adopt(tmp, path.name)
                except (IsulaBuildError, OSError, tarfile.TarError) as exc:
                    raise SharedCacheLost(f"--cache-from {source.repo.name}: cannot fetch "
                                          f"snapshot {blob.digest}: {exc}") from None
                finally:
                    tmp.with_suffix(".tar").unlink(missing_ok=True)
                    if tmp.exists():
                        delete_tree(tmp, ignore_errors=True)
                self.hold([path.name])
                self._remember(path.name, blob)
                _log.info("shared cache: fetched %s (%d bytes)", blob.digest, blob.size)
        with self._lock:
            self._pending.pop(path.name, None)

    def _download(self, source: _Source, blob: CacheBlob, tree: Path) -> None:
        """The blob, checked against its digest (the stream's end) and diff ID, unpacked."""
        tar = tree.with_suffix(".tar")
        hasher = hashlib.sha256()
        with source.repo.open_snapshot(blob) as stream, open(tar, "wb") as out:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
        if f"sha256:{hasher.hexdigest()}" != blob.diff_id:
            raise InvalidArgument(f"its tar has diff ID sha256:{hasher.hexdigest()}, the cache "
                                  f"says {blob.diff_id}")
        extract_layer(tar, tree)

    def _save_complete(self) -> None:
        """Writes the local entries of imported hits whose snapshots are all on disk now."""
        with self._lock:
            complete = [entry for entry in self._hits.values()
                        if all(self.cache.snapshot_path(s).is_dir() for s in entry.snapshots)]
            for entry in complete:
                del self._hits[entry.key]
        for entry in complete:
            try:
                self.cache.put(entry)
            except OSError as exc:
                _log.warning("build cache: cannot save an imported entry: %s", exc)

    def finish(self) -> None:
        """At the end of a build: saves the imported entries that are complete."""
        self._save_complete()

    # --- export -------------------------------------------------------------------------

    def _repo(self) -> CacheRepository:
        assert self.target is not None
        with self._lock:
            if self._target_repo is None:
                self._target_repo = CacheRepository(self.settings, self.target.ref, push=True)
            return self._target_repo

    def _upload_early(self, name: str, push: Callable[[CacheRepository], CacheBlob]) -> None:
        if self._pool is not None and name not in self._uploads:
            self._uploads[name] = self._pool.submit(lambda: push(self._repo()))

    def snapshot_made(self, snapshot: str, path: Path, size: int, final: bool) -> None:
        """A step's snapshot was adopted: with --cache-to, pushed now, while the build goes
        on (`final`: the stage is one the final image is made of; `min` exports no other)."""
        if self.target is not None and (final or self.target.mode == "max"):
            self._upload_early(snapshot, lambda repo: self._push_snapshot(repo, path, size))

    def layer_made(self, diff_id: str, size: int, path: Path, tops: list[Path],
                   clamped: bool) -> None:
        """A stage layer was written over the snapshots `tops` (top first): with --cache-to,
        pushed now; unless it is their merge (disjoint snapshots, all on disk and so exported
        as blobs of their own, mtimes not clamped by --build-static): then the document gives
        it as that merge (tarmerge.py), and its bytes are not sent a second time."""
        if not self._push_layers:
            return   # the image's push sends it; export() finds it in the registry
        if not clamped and tops and all(top.is_dir() for top in tops) and disjoint(tops):
            self._merged[diff_id] = [top.name for top in tops]
            return
        self._upload_early(f"layer:{diff_id}", lambda repo: repo.push_layer(diff_id, size, path))

    def close(self) -> None:
        """At the end of a build: early pushes not started yet are dropped; documents still
        being read (a build that ended before its first lookup) are waited for."""
        self._ready()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def export(self, stage_ends: dict[int, str], final_key: str, created: dict[str, str],
               stage_layers: dict[str, tuple[str, int, Path]]) -> None:
        """Writes to --cache-to the entries of the steps that led to the stages' last keys
        (`max`) or to the final one (`min`: through the parent keys, the stages the target is
        built FROM too); a warning when it cannot."""
        if self.target is None:
            return
        ends = list(stage_ends.values()) if self.target.mode == "max" else [final_key]
        self._forget_evicted()
        try:
            repo = self._repo()
            document = CacheDocument(isula_build.__version__, self.platform, created=created)
            for key in ends:
                self._export_chain(repo, document, key)
            for key, (diff_id, size, path) in stage_layers.items():
                merged = self._merged.get(diff_id)
                if key in document.records and merged is not None:
                    parts = [self._exported_blob(repo, document, name, 0) for name in merged]
                    document.merged_layers[key] = MergedLayer(diff_id, size, parts)
                elif key in document.records:
                    early = self._uploads.get(f"layer:{diff_id}")
                    blob = early.result() if early is not None else \
                        repo.push_layer(diff_id, size, path)
                    document.blobs[blob.digest] = blob
                    document.stage_layers[key] = blob.digest
            repo.write(document)
        except SharedCacheLost as exc:
            self._warn(f"--cache-to {self.target.ref}: {exc}; the cache was not exported")
        except (IsulaBuildError, OSError, tarfile.TarError) as exc:
            self._warn(f"--cache-to {self.target.ref}: cannot export the cache: {exc}")

    def _entry(self, key: str) -> CacheEntry | None:
        with self._lock:
            hit = self._hits.get(key)
        return hit or self.cache.entry(key)

    def _export_chain(self, repo: CacheRepository, document: CacheDocument, key: str) -> None:
        """The entry of `key` and those of its parents, back to a key no entry has (a base
        image's or scratch)."""
        while key not in document.records:
            entry = self._entry(key)
            if entry is None:
                return
            chain = [self._exported_blob(repo, document, snapshot, size)
                     for snapshot, size in entry.chain]
            document.records[key] = CacheRecord(key, entry.parent, chain, entry.config,
                                                entry.layer_entry, entry.inputs)
            key = entry.parent

    def _exported_blob(self, repo: CacheRepository, document: CacheDocument, snapshot: str,
                       unpacked: int) -> str:
        """The digest of the snapshot's blob, which is in `repo` when this returns: one pushed
        before or imported (asked for with HEAD, or mounted from the repository it came
        from), else the snapshot compressed and pushed now."""
        early = self._uploads.get(snapshot)
        if early is not None:
            blob = early.result()
            self._remember(snapshot, blob)
            document.blobs[blob.digest] = blob
            return blob.digest
        with self._lock:
            pending = self._pending.get(snapshot)
        known = self._known(snapshot) or (pending[1] if pending is not None else None)
        if known is not None:
            if known.digest in document.blobs:
                return known.digest
            if repo.has(known.digest) or (
                    pending is not None and repo.mount(known.digest, pending[0].repo)):
                document.blobs[known.digest] = known
                return known.digest
        path = self.cache.snapshot_path(snapshot)
        if pending is not None:
            self._fetch(path, *pending)
        blob = self._push_snapshot(repo, path, unpacked)
        self._remember(snapshot, blob)
        document.blobs[blob.digest] = blob
        return blob.digest

    def _push_snapshot(self, repo: CacheRepository, path: Path, unpacked: int) -> CacheBlob:
        """Streams the snapshot as a gzip tar of an upper dir to the registry."""
        stats: list[LayerStats] = []

        def produce() -> Iterator[bytes]:
            read_end, write_end = os.pipe()
            try:   # a 1 MiB pipe: one write a chunk, not sixteen (and as many thread switches)
                fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _CHUNK)
            except OSError:
                pass   # above /proc/sys/fs/pipe-max-size: the default size works too
            failed: list[BaseException] = []

            def write() -> None:
                try:
                    with open(write_end, "wb") as out:
                        stats.append(write_layer(path, out))
                except BaseException as exc:   # handed to the reading side below
                    failed.append(exc)

            writer = threading.Thread(target=write, name="cache-export", daemon=True)
            writer.start()
            try:
                with open(read_end, "rb") as source:   # closed first: a blocked writer ends
                    yield from gzip_stream(source)
            finally:
                writer.join()
            if failed:   # raised before the upload's end is sent: a cut tar is never stored
                raise failed[0]

        digest, size = repo.upload(produce)
        return CacheBlob(digest, size, stats[-1].diff_id,
                         unpacked or tree_size(path, on_disk=True))

    # --- what was pushed ----------------------------------------------------------------

    def _record_path(self, snapshot: str) -> Path:
        return self.cache.root / _EXPORTED / f"{snapshot}.json"

    def _known(self, snapshot: str) -> CacheBlob | None:
        try:
            data = json.loads(self._record_path(snapshot).read_bytes())
            return CacheBlob(str(data["digest"]), int(data["size"]), str(data["diff_id"]),
                             int(data["unpacked"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _forget_evicted(self) -> None:
        """Drops what was remembered of snapshots the cache no longer has."""
        try:
            for item in os.scandir(self.cache.root / _EXPORTED):
                name = item.name.removesuffix(".json")
                if not name.startswith(".") and not self.cache.snapshot_path(name).is_dir():
                    os.unlink(item.path)
        except OSError:
            pass

    def _remember(self, snapshot: str, blob: CacheBlob) -> None:
        folder = self.cache.root / _EXPORTED
        try:
            folder.mkdir(exist_ok=True)
            tmp = folder / f".{snapshot}.{secrets.token_hex(4)}"
            tmp.write_text(json.dumps({"digest": blob.digest, "size": blob.size,
                                       "diff_id": blob.diff_id, "unpacked": blob.unpacked}))
            os.rename(tmp, self._record_path(snapshot))
        except OSError as exc:
            _log.warning("shared cache: cannot remember the blob of %s: %s", snapshot, exc)


__all__ = ["SharedCache", "SharedCacheLost", "WARNING", "cache_platform"]
