"""info: the daemon's memory, storage, registries and settings, and the platforms RUN can run.

The platforms are read here, from this machine's binfmt_misc (InfoResponse has no field for
them; the client talks to a daemon on the same machine, over its unix socket).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from isula_build.cli.common import ParserContext, session, write_out
from isula_build.units import format_size

EXAMPLE = "isula-build info\nisula-build info -V -H"


def add_commands(subparsers: argparse._SubParsersAction, ctx: ParserContext) -> None:
    p = ctx.add(subparsers, "info", summary="Show isula-build system information",
                usage="isula-build info [FLAGS]", example=EXAMPLE, handler=run_info)
    p.add_argument("-H", "--human-readable", action="store_true",
                   help="Print memory info in human readable format, use powers of 1000")
    p.add_argument("-V", "--verbose", action="store_true", help="Print runtime memory info")


def _go_value(value: Any) -> str:
    # Go prints booleans in lower case.
    return str(value).lower() if isinstance(value, bool) else str(value)


def format_info(reply: Any, *, human_readable: bool, verbose: bool,
                platforms: Sequence[str] = ()) -> str:
    """The original's layout: label, one space (Go's Println), value; then ours, the
    platforms a build can RUN for (this machine's, then those qemu-user runs)."""
    def size(value: int) -> str:
        return format_size(value) if human_readable else str(value)

    lines: list[tuple[str, Any]] = [
        ("General:", None),
        ("  MemTotal:    ", size(reply.memInfo.memTotal)),
        ("  MemFree:     ", size(reply.memInfo.memFree)),
        ("  SwapTotal:   ", size(reply.memInfo.swapTotal)),
        ("  SwapFree:    ", size(reply.memInfo.swapFree)),
        ("  OCI Runtime: ", reply.OCIRuntime),
        ("  DataRoot:    ", reply.dataRoot),
        ("  RunRoot:     ", reply.runRoot),
        ("  Builders:    ", reply.builderNum),
        # The wire field is goRoutines; a Python daemon fills it with its thread count.
        ("  Threads:     ", reply.goRoutines),
        ("  Experimental:", reply.experimental),
        ("Store:", None),
        ("  Storage Driver:    ", reply.storageInfo.storageDriver),
        ("  Backing Filesystem:", reply.storageInfo.storageBackingFs),
        # Ours: the original has no build cache.
        ("  Build Cache:       ", size(reply.buildCacheSize)),
        ("Registry:", None),
        ("  Search Registries:", None),
        *(("   ", r) for r in reply.registryInfo.registriesSearch),
        ("  Insecure Registries:", None),
        *(("   ", r) for r in reply.registryInfo.registriesInsecure),
    ]
    if platforms:
        lines += [("Platforms:", None), *(("   ", platform) for platform in platforms)]
    if verbose:
        stat = reply.memStat
        lines += [
            ("Runtime:", None),
            ("  MemSys:          ", size(stat.memSys)),
            ("  HeapSys:         ", size(stat.heapSys)),
            ("  HeapAlloc:       ", size(stat.heapAlloc)),
            ("  MemHeapInUse:    ", size(stat.heapInUse)),
            ("  MemHeapIdle:     ", size(stat.heapIdle)),
            ("  MemHeapReleased: ", size(stat.heapReleased)),
        ]
    return "".join(label + ("" if value is None else " " + _go_value(value)) + "\n"
                   for label, value in lines)


def run_info(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    with session(args) as conn:
        reply = conn.stub.Info(control_pb2.InfoRequest(verbose=args.verbose))
    from isula_build.builder.binfmt import binfmt_dir, runnable_platforms

    write_out(format_info(reply, human_readable=args.human_readable, verbose=args.verbose,
                          platforms=runnable_platforms(binfmt_dir())))
    return 0
