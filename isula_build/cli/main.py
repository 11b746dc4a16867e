"""isula-build: the command line client of isula-builder.

Builds the argparse tree from one module per command group, checks the global flags, runs the
chosen command and turns every failure into one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn
from collections.abc import Sequence

from isula_build.cli import build, cache, completion, images, info, manifest, registry, version
from isula_build.cli.common import ParserContext, experimental_enabled
from isula_build.cli.connection import Endpoint
from isula_build.errors import FlagError, IsulaBuildError

PROG = "isula-build"
LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING",
              "error": "ERROR"}


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with 1, as every other failure of the client does (SPEC §4)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\nSee '{self.prog} --help'.\n")


def _add_global_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    # Under a subcommand the global flags are listed apart from the command's own.
    group = parser.add_argument_group("global flags") if suppress else parser
    group.add_argument("-D", "--debug", action="store_true", default=default(False),
                        help="Open debug mode")
    group.add_argument("--log-level", metavar="LEVEL", default=default("error"),
                        help='Log level to be used. Either "debug", "info", "warn" or "error" '
                             "(default error)")
    group.add_argument("--timeout", metavar="DURATION", default=default(None),
                        help="Timeout for connecting to the daemon, e.g. 500ms, 20s, 1m "
                             "(range 100ms to 120s, default 20s)")
    group.add_argument("--host", metavar="ADDRESS", default=default(None),
                        help="Daemon socket to connect to, unix:///PATH "
                             "(default $ISULABUILD_HOST or unix:///var/run/isula_build.sock)")


def build_parser(experimental: bool | None = None) -> argparse.ArgumentParser:
    """The whole command tree; `experimental` defaults to $ISULABUILD_CLI_EXPERIMENTAL."""
    if experimental is None:
        experimental = experimental_enabled()
    parser = _Parser(
        prog=PROG, description="isula-build client: build and manage container images "
                               "with the isula-builder daemon.")
    _add_global_flags(parser, suppress=False)
    parser.add_argument("-v", "--version", action=version.VersionAction,
                        help="Version for isula-build client")
    parser.set_defaults(run=None)

    global_flags = argparse.ArgumentParser(add_help=False)
    _add_global_flags(global_flags, suppress=True)
    ctx = ParserContext(experimental=experimental, global_flags=global_flags)

    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    ctr_img = ctx.add(commands, "ctr-img", summary="Container Image Operations")
    ctr_img_commands = ctr_img.add_subparsers(title="commands", metavar="COMMAND")
    ctr_img.set_defaults(run=None, help_parser=ctr_img)
    build.add_commands(ctr_img_commands, ctx)
    images.add_commands(ctr_img_commands, ctx)
    registry.add_image_commands(ctr_img_commands, ctx)

    cache.add_commands(commands, ctx)
    info.add_commands(commands, ctx)
    registry.add_login_commands(commands, ctx)
    version.add_commands(commands, ctx)
    if experimental:
        manifest.add_commands(commands, ctx)
    completion.add_commands(commands, ctx)
    parser.set_defaults(help_parser=parser)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    level_name = args.log_level.lower()
    if level_name not in LOG_LEVELS:
        raise FlagError(
            f'unable to parse log level: "{args.log_level}" is not one of debug, info, warn, error')
    import logging  # here, not at the top: --help does not log

    level = "DEBUG" if args.debug else LOG_LEVELS[level_name]
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")


def _user_message(exc: BaseException) -> str | None:
    """The text to show for an expected failure, or None for a bug (shown as a traceback).

    grpc is looked up in sys.modules instead of imported: when it was never imported, the
    exception cannot come from it, and --help stays fast.
    """
    if isinstance(exc, IsulaBuildError):
        return str(exc)
    grpc = sys.modules.get("grpc")
    if grpc is not None and isinstance(exc, grpc.RpcError) and hasattr(exc, "details"):
        # The daemon's message, shown as is (SPEC §6).
        return exc.details() or str(exc.code())
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
    return None


# Boolean flags whose default is true; users of the original turn them off as --flag=false.
_TRUE_BY_DEFAULT = ("--proxy",)
_FALSE_WORDS = ("false", "0", "f", "no")
_TRUE_WORDS = ("true", "1", "t", "yes")


def normalize_bool_flags(argv: Sequence[str]) -> list[str]:
    """Rewrites --proxy=false / --proxy=true (cobra's spelling) into --no-proxy / --proxy."""
    result = []
    for word in argv:
        flag, sep, value = word.partition("=")
        if sep and flag in _TRUE_BY_DEFAULT:
            if value.lower() in _FALSE_WORDS:
                word = "--no-" + flag[2:]
            elif value.lower() in _TRUE_WORDS:
                word = flag
        result.append(word)
    return result


def run(argv: Sequence[str]) -> int:
    """Runs one command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(normalize_bool_flags(argv))
    if args.run is None:
        args.help_parser.print_help()
        return 0
    try:
        _configure_logging(args)
        args.endpoint = Endpoint.from_flags(args.host, args.timeout)
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure ends as one line on stderr
        message = _user_message(exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """The isula-build program; with `argv` given, a plain call that returns the exit code."""
    if argv is not None:
        return run(argv)
    code = run(sys.argv[1:])
    if "grpc" in sys.modules:
        # The command is over and its output written; skip the interpreter's shutdown, where
        # grpc joins its threads (tens of milliseconds on every command, SPEC asks for speed).
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            code = code or 1
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
