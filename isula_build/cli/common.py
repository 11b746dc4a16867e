"""What every command module shares: the parser context, the daemon session, stream printing.

Only the standard library and isula_build.errors are imported here at module level; grpc and
the generated stubs are imported when a command actually runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isula_build.cli.connection import Connection

EXPERIMENTAL_ENV = "ISULABUILD_CLI_EXPERIMENTAL"
CONFIG_DIR_ENV = "ISULABUILD_CONFIG_DIR"
DEFAULT_CONFIG_DIR = "/etc/isula-build"
PUBLIC_KEY_NAME = "isula-build.pub"

# IDs the original client sends with streaming requests (buildID, loadID, ...): 12 hex digits.
ID_LENGTH = 12

Handler = Callable[[argparse.Namespace], int]


def experimental_enabled() -> bool:
    return os.environ.get(EXPERIMENTAL_ENV) == "enabled"


def config_dir() -> str:
    return os.environ.get(CONFIG_DIR_ENV) or DEFAULT_CONFIG_DIR


def public_key_path() -> str:
    return os.path.join(config_dir(), PUBLIC_KEY_NAME)


def new_id() -> str:
    return os.urandom(ID_LENGTH // 2).hex()


def absolute(path: str) -> str:
    """A path made absolute against the current directory (the daemon has another one)."""
    return os.path.abspath(path)


@dataclass(frozen=True)
class ParserContext:
    """What a command group needs to add its parsers."""

    experimental: bool
    # Global flags are accepted after a subcommand too (as cobra's persistent flags are);
    # this parent parser declares them with SUPPRESS defaults so they never override the
    # values given before the subcommand.
    global_flags: argparse.ArgumentParser

    def add(self, subparsers: argparse._SubParsersAction, name: str, *, summary: str,
            usage: str | None = None, example: str | None = None,
            handler: Handler | None = None, hidden: bool = False) -> argparse.ArgumentParser:
        epilog = f"Example:\n{_indent(example)}" if example else None
        kwargs: dict[str, Any] = {} if hidden else {"help": summary}
        parser = subparsers.add_parser(
            name, description=summary, usage=usage, epilog=epilog,
            parents=[self.global_flags], formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs)
        if handler is not None:
            parser.set_defaults(run=handler)
        return parser


def add_compression_flag(parser: argparse.ArgumentParser) -> None:
    """--compression of push and build (ours; the request field stays empty without it)."""
    parser.add_argument("--compression", default="", metavar="gzip|zstd[:LEVEL]",
                        help="Compression of the layers sent to a registry: gzip (levels 1-3, "
                             "the default) or zstd (levels 1-19, default 3; OCI format only)")


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


@contextmanager
def session(args: argparse.Namespace) -> Iterator[Connection]:
    """Connects to the daemon named by the global flags, health check included."""
    from isula_build.cli.connection import connect

    connection = connect(args.endpoint)
    try:
        yield connection
    finally:
        connection.close()


def write_out(text: str) -> None:
    """Prints a daemon message as it arrives (messages carry their own newlines)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def print_stream(responses: Iterable[Any], field: str, *, add_newline: bool = False) -> None:
    """Prints one text field of each streamed response as it arrives.

    The original daemon ends each log message with a newline except the Remove stream's
    layerMessage, which its client prints with Println; `add_newline` follows that.
    """
    end = "\n" if add_newline else ""
    for message in responses:
        write_out(getattr(message, field) + end)
