"""Info: the daemon's memory, storage, registries and settings (`isula-build info`)."""

from __future__ import annotations

import threading
from pathlib import Path

from isula_build.api import control_pb2 as pb
from isula_build.daemon.fsinfo import fs_name
from isula_build.daemon.handlers.cache import build_cache_size
from isula_build.daemon.state import DaemonState

_KIB = 1024


def info(state: DaemonState, request: pb.InfoRequest) -> pb.InfoResponse:
    opts = state.options
    meminfo = _read_kib_table(Path("/proc/meminfo"))
    response = pb.InfoResponse(
        memInfo=pb.MemData(
            memTotal=meminfo.get("MemTotal", 0),
            memFree=meminfo.get("MemFree", 0),
            swapTotal=meminfo.get("SwapTotal", 0),
            swapFree=meminfo.get("SwapFree", 0),
        ),
        storageInfo=pb.StorageData(
            storageDriver="overlay",
            storageBackingFs=fs_name(opts.data_root),
        ),
        registryInfo=pb.RegistryData(
            registriesSearch=list(opts.registries.search),
            registriesInsecure=list(opts.registries.insecure),
            registriesBlock=list(opts.registries.block),
        ),
        dataRoot=str(opts.data_root),
        runRoot=str(opts.run_root),
        OCIRuntime=opts.runtime,
        builderNum=state.builds_running,
        goRoutines=threading.active_count(),
        experimental=opts.experimental,
        buildCacheSize=build_cache_size(opts),
    )
    if request.verbose:
        response.memStat.CopyFrom(_mem_stat())
    return response


def _mem_stat() -> pb.MemStat:
    """The daemon's own memory, in bytes, from /proc/self/status.

    Go's runtime.MemStats has no Python equivalent; the closest kernel figures stand in:
    memSys = resident set (VmRSS), heapSys = data segment (VmData), heapAlloc = heapInUse =
    resident anonymous memory (RssAnon), heapIdle = the part of the data segment not resident,
    heapReleased = swapped out (VmSwap).
    """
    status = _read_kib_table(Path("/proc/self/status"))
    rss_anon = status.get("RssAnon", 0)
    data = status.get("VmData", 0)
    return pb.MemStat(
        memSys=status.get("VmRSS", 0),
        heapSys=data,
        heapAlloc=rss_anon,
        heapInUse=rss_anon,
        heapIdle=max(data - rss_anon, 0),
        heapReleased=status.get("VmSwap", 0),
    )


def _read_kib_table(path: Path) -> dict[str, int]:
    """Lines like `MemTotal:  16318000 kB`, as bytes (the original reports bytes)."""
    table: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) == 2 and fields[1] == "kB" and fields[0].isdigit():
            table[key] = int(fields[0]) * _KIB
    return table
