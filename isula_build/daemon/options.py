"""The daemon's effective settings: defaults, then configuration files, then flags (flags win).

The run and data roots come, in order of precedence, from --runroot/--dataroot, run_root/data_root
in configuration.toml, runroot/graphroot in storage.toml, then the defaults: the original's order
(it merges storage.toml first and configuration.toml over it). A storage.toml root that loses to
a different one is named in an info line, since a file copied from a machine whose tools share
containers/storage often sets them.
"""

from __future__ import annotations

import grp
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from isula_build.daemon.config import (
    CONFIGURATION_FILE,
    LOG_LEVELS,
    STORAGE_FILE,
    FileConfig,
    Notice,
    check_mount_options,
    check_storage_driver,
)
from isula_build.errors import ConfigError
from isula_build.registry.settings import Registries, RegistrySettings, SignaturePolicy
from isula_build.store.space import SpaceReserve

DEFAULT_HOST = "unix:///var/run/isula_build.sock"
DEFAULT_CONFIG_DIR = Path("/etc/isula-build")
DEFAULT_DATA_ROOT = Path("/var/lib/isula-build")
DEFAULT_RUN_ROOT = Path("/var/run/isula-build")
DEFAULT_GROUP = "isula"
DEFAULT_LOG_LEVEL = "info"
DEFAULT_RUNTIME = "runc"
DEFAULT_STORAGE_DRIVER = "overlay"
DEFAULT_MOUNT_OPTIONS = "nodev"  # what the original's storage.toml ships
# Kept free on the data root's filesystem (configuration.toml min_free_space; store/space.py).
DEFAULT_MIN_FREE_SPACE = 1 << 30
# The build cache keeps unused entries this long (configuration.toml cache_max_age).
DEFAULT_CACHE_MAX_AGE = 30 * 24 * 3600
UNIX_PREFIX = "unix://"

T = TypeVar("T")


@dataclass(frozen=True)
class Flags:
    """Command-line values; None means the flag was not given (so a file value may apply)."""

    host: str
    config_dir: Path
    debug: bool | None = None
    log_level: str | None = None
    data_root: str | None = None
    run_root: str | None = None
    group: str | None = None
    storage_driver: str | None = None
    storage_opts: tuple[str, ...] | None = None
    experimental: bool | None = None


@dataclass(frozen=True)
class DaemonOptions:
    socket_path: Path
    config_dir: Path
    data_root: Path
    run_root: Path
    group: str
    gid: int
    debug: bool
    log_level: str  # debug|info|warn|error; debug=True forces "debug"
    runtime: str
    experimental: bool
    storage_driver: str
    mount_options: str  # comma-separated overlay mount options for build layers
    registries: Registries
    policy: SignaturePolicy
    min_free_space: int = DEFAULT_MIN_FREE_SPACE  # bytes; 0: no reserve
    cache_max_size: int | None = None  # build cache bytes; None: 20% of the data root's fs
    cache_max_age: int = DEFAULT_CACHE_MAX_AGE  # seconds an unused cache entry is kept
    notices: tuple[Notice, ...] = ()  # to log at start-up: ignored keys, overridden roots

    def registry_settings(self) -> RegistrySettings:
        """What pulls, pushes and logins need of these settings."""
        return RegistrySettings(config_dir=self.config_dir, data_root=self.data_root,
                                registries=self.registries, policy=self.policy)

    def space_reserve(self) -> SpaceReserve:
        """The store's free space reserve, named in its errors by the setting that decides it."""
        return SpaceReserve(self.min_free_space,
                            f"min_free_space in {self.config_dir / CONFIGURATION_FILE}")


def resolve_options(flags: Flags, files: FileConfig) -> DaemonOptions:
    main = files.main
    conf = flags.config_dir / CONFIGURATION_FILE

    log_level = _pick(flags.log_level, main.loglevel, DEFAULT_LOG_LEVEL)
    if log_level not in LOG_LEVELS:
        raise ConfigError(f'invalid --log-level "{log_level}" (choose one of '
                          f'{", ".join(LOG_LEVELS)})')
    debug = _pick(flags.debug, main.debug, False)

    storage = files.storage
    notices = list(storage.notices)
    data_root = _root_path(_RootSources("--dataroot", flags.data_root, "data_root", main.data_root,
                                        "graphroot", storage.graph_root, DEFAULT_DATA_ROOT),
                           flags.config_dir, notices)
    run_root = _root_path(_RootSources("--runroot", flags.run_root, "run_root", main.run_root,
                                       "runroot", storage.run_root, DEFAULT_RUN_ROOT),
                          flags.config_dir, notices)
    if data_root == run_root:
        raise ConfigError(f"the run root ({run_root}) and the data root ({data_root}) must be "
                          "different directories")

    group = _pick(flags.group, main.group, DEFAULT_GROUP)
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        where = "--group" if flags.group is not None else (
            f'"group" in {conf}' if main.group is not None else "the default group")
        raise ConfigError(f'group "{group}" (from {where}) does not exist: create it '
                          f'(groupadd {group}) or choose an existing group with --group or '
                          f'"group" in {conf}') from None

    driver = _pick(flags.storage_driver, files.storage.driver, DEFAULT_STORAGE_DRIVER)
    check_storage_driver(driver, ConfigError)
    if flags.storage_opts is not None:
        mount_options = _mount_options_from_flags(flags.storage_opts)
    else:
        mount_options = _pick(None, files.storage.mountopt, DEFAULT_MOUNT_OPTIONS)

    return DaemonOptions(
        socket_path=socket_path(flags.host),
        config_dir=flags.config_dir,
        data_root=data_root,
        run_root=run_root,
        group=group,
        gid=gid,
        debug=debug,
        log_level="debug" if debug else log_level,
        runtime=main.runtime or DEFAULT_RUNTIME,
        experimental=_pick(flags.experimental, main.experimental, False),
        storage_driver=driver,
        mount_options=mount_options,
        registries=files.registries,
        policy=files.policy,
        min_free_space=_pick(None, main.min_free_space, DEFAULT_MIN_FREE_SPACE),
        cache_max_size=main.cache_max_size,
        cache_max_age=_pick(None, main.cache_max_age, DEFAULT_CACHE_MAX_AGE),
        notices=tuple(notices),
    )


def socket_path(host: str) -> Path:
    """The socket path of a `unix:///PATH` address."""
    if not host.startswith(UNIX_PREFIX):
        raise ConfigError(f'--host "{host}": only unix sockets are supported '
                          "(unix:///path/to/socket)")
    path = host[len(UNIX_PREFIX):]
    if not os.path.isabs(path):
        raise ConfigError(f'--host "{host}": the socket path must be absolute')
    # The kernel limits a unix socket path to 108 bytes including the terminating NUL.
    if len(os.fsencode(path)) > 107:
        raise ConfigError(f'--host "{host}": the socket path is longer than 107 bytes')
    return Path(os.path.normpath(path))


def _pick(flag: T | None, file_value: T | None, default: T) -> T:
    if flag is not None:
        return flag
    if file_value is not None:
        return file_value
    return default


@dataclass(frozen=True)
class _RootSources:
    """Where one root may come from, in order of precedence."""

    flag_name: str
    flag: str | None
    main_key: str           # in configuration.toml
    main: Path | None
    storage_key: str        # in storage.toml
    storage: Path | None
    default: Path


def _root_path(src: _RootSources, config_dir: Path, notices: list[Notice]) -> Path:
    if src.flag is not None:
        if not src.flag or not os.path.isabs(src.flag):
            raise ConfigError(f'{src.flag_name} "{src.flag}" must be an absolute path')
        root, winner = Path(os.path.normpath(src.flag)), src.flag_name
    elif src.main is not None:
        root, winner = src.main, f'"{src.main_key}" in {config_dir / CONFIGURATION_FILE}'
    else:
        return src.storage or src.default
    if src.storage is not None and src.storage != root:
        notices.append(Notice(logging.INFO, f'config file {config_dir / STORAGE_FILE}: '
                              f'"storage.{src.storage_key}" {src.storage} is overridden by '
                              f"{winner}: {root} is used"))
    return root


def _mount_options_from_flags(storage_opts: tuple[str, ...]) -> str:
    """`--storage-opt overlay.mountopt=nodev` (containers/storage's spelling), repeatable."""
    options: list[str] = []
    for opt in storage_opts:
        key, sep, value = opt.partition("=")
        if not sep or key.strip().lower() not in ("overlay.mountopt", "overlay2.mountopt"):
            raise ConfigError(f'--storage-opt "{opt}" is not supported (use '
                              '--storage-opt overlay.mountopt=OPTION[,OPTION...])')
        check_mount_options(value, lambda problem: ConfigError(f"--storage-opt: {problem}"))
        options.append(value)
    return ",".join(options)

