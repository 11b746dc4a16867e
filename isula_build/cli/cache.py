"""cache ls and cache prune: the daemon's build cache (this project's own commands)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from isula_build.cli.common import ParserContext, session, write_out
from isula_build.errors import InvalidArgument
from isula_build.units import format_size, human_duration, parse_size

ID_SHOWN = 12
STEP_SHOWN = 60
HEADERS = ("ID", "SIZE", "LAST USED", "STEP")
_COLUMN_GAP = "   "   # docker's tabwriter padding

LS_EXAMPLE = "isula-build cache ls"
PRUNE_EXAMPLE = ("isula-build cache prune\nisula-build cache prune --all\n"
                 "isula-build cache prune --keep-storage 2GiB")


def add_commands(subparsers: argparse._SubParsersAction, ctx: ParserContext) -> None:
    group = ctx.add(subparsers, "cache", summary="Build Cache Operations")
    group.set_defaults(run=None, help_parser=group)
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    ctx.add(commands, "ls", summary="List the build cache's entries",
            usage="isula-build cache ls", example=LS_EXAMPLE, handler=run_ls)

    p = ctx.add(commands, "prune", summary="Remove build cache entries",
                usage="isula-build cache prune [--all] [--keep-storage SIZE]",
                example=PRUNE_EXAMPLE, handler=run_prune)
    p.add_argument("-a", "--all", action="store_true",
                   help="Remove every entry no running build uses, not just the dangling "
                        "and those past the configured limits")
    p.add_argument("--keep-storage", default=None, metavar="SIZE",
                   help="Remove least recently used entries until the cache takes at most "
                        "SIZE (e.g. 512MB, 2GiB)")


def _step(text: str) -> str:
    text = " ".join(text.split()) or "-"
    return text if len(text) <= STEP_SHOWN else text[:STEP_SHOWN - 3] + "..."


def format_cache_table(rows: Sequence[tuple[str, int, float, str]], total: int,
                       now: float) -> str:
    """Rows of (key, size, last used, step) as aligned columns, then the total line."""
    cells = [(key.partition(":")[2][:ID_SHOWN] or key[:ID_SHOWN], format_size(size),
              human_duration(max(now - used, 0)) + " ago", _step(step))
             for key, size, used, step in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(HEADERS)]

    def line(values: Sequence[str]) -> str:
        return _COLUMN_GAP.join(v.ljust(w) for v, w in zip(values, widths)).rstrip() + "\n"

    return line(HEADERS) + "".join(line(c) for c in cells) + f"Total: {format_size(total)}\n"


def run_ls(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    with session(args) as conn:
        reply = conn.stub.CacheList(control_pb2.CacheListRequest())
    rows = [(e.id, e.size, e.lastUsed.ToNanoseconds() / 1e9, e.step) for e in reply.entries]
    write_out(format_cache_table(rows, reply.totalSize, time.time()))
    return 0


def keep_storage_bytes(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise InvalidArgument(f'invalid --keep-storage "{text}": want a size such as 512MB, 2GiB '
                              "or 4096 (bytes)") from None


def run_prune(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    request = control_pb2.CachePruneRequest(all=args.all)
    if args.keep_storage is not None:
        request.keepStorage = keep_storage_bytes(args.keep_storage)
    with session(args) as conn:
        reply = conn.stub.CachePrune(request)
    write_out(f"Total reclaimed space: {format_size(reply.spaceReclaimed)}\n")
    return 0
