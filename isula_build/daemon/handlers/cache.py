"""CacheList and CachePrune (`isula-build cache ls` / `cache prune`), this project's own RPCs,
and the daemon's one way to open its build cache (builder/cache.py).

Prune follows `docker builder prune`: its plain form removes what is dangling, here entries
whose blob is gone, blobs no entry names, and what the configured limits (cache_max_size,
cache_max_age) evict, the eviction a build runs after it ends; `--all` removes every entry
(metadata-only steps too, so the next build runs every step) except those whose blob a running
build holds; `--keep-storage SIZE` evicts least recently used entries, whatever their age, until
the blobs fit SIZE (with `--all` too: docker's reading, every entry may go but SIZE stays).
The directories of `RUN --mount=type=cache` (builder/cachemounts.py) are listed and counted
with the entries; plain prune removes those unused for longer than cache_max_age, `--all` every
one no build holds.
"""

from __future__ import annotations

from isula_build.api import control_pb2 as pb
from isula_build.builder.cache import BuildCache, open_cache
from isula_build.builder.cachemounts import cache_mount_rows, cache_mount_usage, prune_cache_mounts
from isula_build.daemon.options import DaemonOptions
from isula_build.daemon.state import DaemonState
from isula_build.errors import InvalidArgument


def daemon_cache(options: DaemonOptions) -> BuildCache:
    """The build cache of the daemon's data root, with its configured limits."""
    return open_cache(options.data_root, options.cache_max_size, options.cache_max_age)


def cache_list(state: DaemonState, request: pb.CacheListRequest) -> pb.CacheListResponse:
    cache = daemon_cache(state.options)
    response = pb.CacheListResponse(totalSize=cache.size())
    for row in cache.usage():
        entry = response.entries.add(id=row.key, step=row.step, size=row.size, inUse=row.in_use)
        entry.lastUsed.FromNanoseconds(int(row.last_used * 1e9))
    for mount in cache_mount_rows(state.options.data_root):
        entry = response.entries.add(id="mount:" + mount.name, size=mount.size, inUse=mount.in_use,
                                     step=f"RUN --mount=type=cache,id={mount.cache_id}")
        entry.lastUsed.FromNanoseconds(int(mount.last_used * 1e9))
        response.totalSize += mount.size
    return response


def build_cache_size(options: DaemonOptions) -> int:
    """The `Build Cache:` of info: the cache's blobs and the cache mounts' directories."""
    return daemon_cache(options).size() + cache_mount_usage(options.data_root)


def cache_prune(state: DaemonState, request: pb.CachePruneRequest) -> pb.CachePruneResponse:
    keep = request.keepStorage if request.HasField("keepStorage") else None
    if keep is not None and keep < 0:
        raise InvalidArgument(f"keep-storage must not be negative, got {keep}")
    removed, freed = daemon_cache(state.options).prune(everything=request.all, keep_storage=keep)
    mounts, mounts_freed = prune_cache_mounts(
        state.options.data_root, None if request.all else state.options.cache_max_age)
    return pb.CachePruneResponse(entriesRemoved=removed + mounts,
                                 spaceReclaimed=freed + mounts_freed)
