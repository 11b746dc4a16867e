"""isula-builder: the command line (SPEC §3). Flags, configuration, logging, then the server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import isula_build
from isula_build.daemon.completion import bash_completion
from isula_build.daemon.config import LOG_LEVELS, load_file_config
from isula_build.daemon.options import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_HOST,
    DaemonOptions,
    Flags,
    resolve_options,
)
from isula_build.errors import IsulaBuildError

PROGRAM = "isula-builder"
CONFIG_DIR_ENV = "ISULABUILD_CONFIG_DIR"
COMPLETION_COMMAND = "completion"  # hidden, as in the original

# Named, not __name__: run as `python -m isula_build.daemon.main` that would be "__main__".
_log = logging.getLogger("isula_build.daemon.main")

_PYTHON_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
                  "error": logging.ERROR}


class _VersionAction(argparse.Action):
    """Prints the version; the git commit is looked up only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from isula_build.buildinfo import git_commit
        print(f"{PROGRAM} version {isula_build.__version__}, build {git_commit()}")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Exit code 1 for every start-up failure, bad flags included, as the original does.
        self.print_usage(sys.stderr)
        self.exit(1, f"{PROGRAM}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROGRAM, description="isula-build daemon for container image building")
    # Every value flag defaults to None so that a value from a configuration file applies
    # unless the flag was given (flags win over files).
    p.add_argument("-D", "--debug", action="store_const", const=True, default=None,
                   help="open debug mode")
    p.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                   help='log level: "debug", "info", "warn" or "error" (default "info")')
    p.add_argument("--dataroot", metavar="DIR", default=None,
                   help="persistent directory (default /var/lib/isula-build)")
    p.add_argument("--runroot", metavar="DIR", default=None,
                   help="runtime directory (default /var/run/isula-build)")
    p.add_argument("--group", metavar="GROUP", default=None,
                   help='group owning the socket (default "isula")')
    p.add_argument("--storage-driver", metavar="DRIVER", default=None,
                   help='storage driver (default "overlay")')
    p.add_argument("--storage-opt", metavar="OPTION", action="append", default=None,
                   help="storage driver option, e.g. overlay.mountopt=nodev (repeatable)")
    p.add_argument("--experimental", action="store_const", const=True, default=None,
                   help="enable experimental features")
    p.add_argument("--host", metavar="ADDRESS", default=DEFAULT_HOST,
                   help=f"socket to listen on (default {DEFAULT_HOST})")
    p.add_argument("--config-dir", metavar="DIR",
                   default=os.environ.get(CONFIG_DIR_ENV) or str(DEFAULT_CONFIG_DIR),
                   help=f"configuration directory (default ${CONFIG_DIR_ENV} or "
                        f"{DEFAULT_CONFIG_DIR})")
    p.add_argument("-v", "--version", action=_VersionAction, nargs=0,
                   help="print the version and exit")
    return p


def _flags(args: argparse.Namespace) -> Flags:
    return Flags(
        host=args.host,
        config_dir=Path(os.path.abspath(args.config_dir)),
        debug=args.debug,
        log_level=args.log_level,
        data_root=args.dataroot,
        run_root=args.runroot,
        group=args.group,
        storage_driver=args.storage_driver,
        storage_opts=tuple(args.storage_opt) if args.storage_opt is not None else None,
        experimental=args.experimental,
    )


def _setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=_PYTHON_LEVELS[level],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _log_startup(options: DaemonOptions) -> None:
    for notice in options.notices:
        _log.log(notice.level, "%s", notice.message)
    # What an administrator checks first when the daemon does not behave as configured.
    _log.info("configuration directory %s, run root %s, data root %s, storage driver %s, "
              "runtime %s", options.config_dir, options.run_root, options.data_root,
              options.storage_driver, options.runtime)
    _log.debug("starting with %s", options)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv == [COMPLETION_COMMAND]:
        sys.stdout.write(bash_completion(parser, PROGRAM))
        return 0
    args = parser.parse_args(argv)
    # Heavy imports (grpc server, store, cryptography) wait until a daemon is really started.
    from isula_build.daemon import server
    try:
        flags = _flags(args)
        options = resolve_options(flags, load_file_config(flags.config_dir))
        _setup_logging(options.log_level)
        _log_startup(options)
        server.run(options)
    except IsulaBuildError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
