"""version: the client's build facts, then the daemon's, in the original's layout."""

from __future__ import annotations

import argparse
from typing import Any

from isula_build.cli.common import ParserContext, session, write_out

EXAMPLE = "isula-build version"
# Labels padded as the original pads "Go Version:"; this client reports Python instead.
_FIELDS = (("Version:", "version"), ("Python Version:", "goVersion"),
           ("Git Commit:", "gitCommit"), ("Built:", "buildTime"), ("OS/Arch:", "osArch"))


def add_commands(subparsers: argparse._SubParsersAction, ctx: ParserContext) -> None:
    ctx.add(subparsers, "version", summary="Show the isula-build version information",
            usage="isula-build version", example=EXAMPLE, handler=run_version)


def client_info() -> Any:
    """This installation's VersionResponse; the daemon answers from the same facts."""
    from isula_build.buildinfo import version_response

    return version_response()


class VersionAction(argparse.Action):
    """-v/--version: computed only when asked, as finding the commit runs git."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        info = client_info()
        write_out(f"{parser.prog} version {info.version}, build {info.gitCommit}\n")
        parser.exit(0)


def format_block(title: str, info: Any) -> str:
    return f"{title}:\n" + "".join(f"  {label:<15} {getattr(info, field)}\n"
                                   for label, field in _FIELDS)


def run_version(args: argparse.Namespace) -> int:
    from google.protobuf import empty_pb2

    write_out(format_block("Client", client_info()))
    with session(args) as conn:
        server = conn.stub.Version(empty_pb2.Empty())
    write_out("\n" + format_block("Server", server))
    return 0
