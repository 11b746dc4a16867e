"""The daemon's configuration files (SPEC §2): read, validate, and turn into plain data.

Every file is optional. A file that exists must be a regular file of at most 1 MiB whose content
is well formed and holds only known keys with valid values; anything else raises ConfigError with
a message that names the file and the problem, and the daemon refuses to start. storage.toml is
the exception to "only known keys": it is containers-storage.conf(5), a format shared with other
tools, so a file copied from an openEuler machine must work; keys of it that isula-builder does
not use are ignored with a warning (a `Notice`) instead. Merging with the command-line flags
(which win) happens in `daemon/options.py`.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isula_build.errors import ConfigError
from isula_build.image import jsondoc
from isula_build.registry.settings import PolicyRequirement, Registries, SignaturePolicy
from isula_build.units import parse_size

MAX_CONFIG_FILE_SIZE = 1 << 20  # 1 MiB, as the original limits every configuration file

CONFIGURATION_FILE = "configuration.toml"
STORAGE_FILE = "storage.toml"
REGISTRIES_FILE = "registries.toml"
POLICY_FILE = "policy.json"

LOG_LEVELS = ("debug", "info", "warn", "error")
# containers/storage calls the driver "overlay"; docker users know it as "overlay2".
STORAGE_DRIVERS = ("overlay", "overlay2")
# Policy requirement types we can honour: neither needs signature verification.
POLICY_TYPES_SUPPORTED = ("insecureAcceptAnything", "reject")
# Types containers/image defines that need signature verification, which we do not implement;
# accepting them silently would let unsigned images through, so they stop the daemon instead.
POLICY_TYPES_UNSUPPORTED = ("signedBy", "signedBaseLayer", "sigstoreSigned")


@dataclass(frozen=True)
class MainConfig:
    """configuration.toml; None means "not set in the file"."""

    debug: bool | None = None
    loglevel: str | None = None
    group: str | None = None
    run_root: Path | None = None
    data_root: Path | None = None
    runtime: str | None = None
    experimental: bool | None = None
    min_free_space: int | None = None  # bytes kept free on the data root's filesystem
    cache_max_size: int | None = None  # bytes the build cache may keep (builder/cache.py)
    cache_max_age: int | None = None   # seconds an unused build cache entry is kept


@dataclass(frozen=True)
class Notice:
    """A log line about the configuration. The files are read before logging is set up (they
    hold the log level), so what they have to say is kept and logged once it is."""

    level: int  # a `logging` level
    message: str


@dataclass(frozen=True)
class StorageConfig:
    """storage.toml (containers-storage.conf(5)); None means "not set in the file"."""

    driver: str | None = None
    mountopt: str | None = None
    run_root: Path | None = None     # [storage] runroot
    graph_root: Path | None = None   # [storage] graphroot: the data root, as in the original
    notices: tuple[Notice, ...] = ()  # the keys that were ignored


@dataclass(frozen=True)
class FileConfig:
    """Everything read from the configuration directory."""

    main: MainConfig = MainConfig()
    storage: StorageConfig = StorageConfig()
    registries: Registries = Registries()
    policy: SignaturePolicy = SignaturePolicy()


def load_file_config(config_dir: Path) -> FileConfig:
    """Reads and validates every configuration file present in `config_dir`."""
    main = _parse_toml_file(config_dir / CONFIGURATION_FILE, _main_config)
    storage = _parse_toml_file(config_dir / STORAGE_FILE, _storage_config)
    registries = _parse_toml_file(config_dir / REGISTRIES_FILE, _registries)
    policy_bytes = read_config_file(config_dir / POLICY_FILE)
    policy = SignaturePolicy() if policy_bytes is None else _policy(config_dir / POLICY_FILE,
                                                                   policy_bytes)
    return FileConfig(
        main=main or MainConfig(),
        storage=storage or StorageConfig(),
        registries=registries or Registries(),
        policy=policy,
    )


def read_config_file(path: Path) -> bytes | None:
    """The bytes of a configuration file, None if it does not exist; enforces the 1 MiB limit."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot open: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"config file {path}: must be a regular file")
    with os.fdopen(fd, "rb") as f:
        # Read one byte past the limit so that any larger file is caught, however it grew.
        data = f.read(MAX_CONFIG_FILE_SIZE + 1)
    if len(data) > MAX_CONFIG_FILE_SIZE:
        raise ConfigError(f"config file {path}: larger than the limit of 1 MiB")
    return data


def _parse_toml_file(path: Path, build: Any) -> Any:
    data = read_config_file(path)
    if data is None:
        return None
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid UTF-8: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from exc
    except RecursionError:
        # tomllib recurses once per level of nested arrays and inline tables, without a limit.
        raise ConfigError(f"config file {path}: invalid TOML: arrays or inline tables nested "
                          "too deep") from None
    return build(_Reader(path), table)


class _Reader:
    """Typed access to a parsed table that reports problems with the file name and key path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, problem: str) -> ConfigError:
        return ConfigError(f"config file {self.path}: {problem}")

    def check_keys(self, table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in allowed:
                place = f" in [{where}]" if where else ""
                known = ", ".join(allowed) if allowed else "none"
                raise self.error(f'unknown key "{key}"{place} (known keys: {known})')

    def get(self, table: dict[str, Any], key: str, kind: type, where: str) -> Any:
        if key not in table:
            return None
        value = table[key]
        # bool is a subclass of int in Python; TOML keeps them apart and so do we.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            name = f"{where}.{key}" if where else key
            raise self.error(f'"{name}" must be a {_KIND_NAMES[kind]}, '
                             f"not {_toml_type(value)}")
        return value

    def table(self, table: dict[str, Any], key: str, where: str) -> dict[str, Any]:
        value = self.get(table, key, dict, where)
        return {} if value is None else value

    def strings(self, table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        values = self.get(table, key, list, where)
        if values is None:
            return ()
        for value in values:
            if not isinstance(value, str):
                raise self.error(f'"{where}.{key}" must be a list of strings')
        return tuple(values)


_KIND_NAMES = {bool: "boolean", str: "string", list: "list", dict: "table"}


def _toml_type(value: Any) -> str:
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "a table",
             int: "an integer", float: "a float"}
    return names.get(type(value), type(value).__name__)


def _main_config(r: _Reader, t: dict[str, Any]) -> MainConfig:
    r.check_keys(t, ("debug", "loglevel", "group", "run_root", "data_root", "runtime",
                     "experimental", "min_free_space", "cache_max_size", "cache_max_age"), "")
    loglevel = r.get(t, "loglevel", str, "")
    # The original's sample file ships `loglevel = ""`; an empty value means "not set".
    if loglevel == "":
        loglevel = None
    if loglevel is not None and loglevel not in LOG_LEVELS:
        raise r.error(f'invalid loglevel "{loglevel}" (choose one of {", ".join(LOG_LEVELS)})')
    return MainConfig(
        debug=r.get(t, "debug", bool, ""),
        loglevel=loglevel,
        group=_non_empty(r, t, "group"),
        run_root=_root(r, t, "run_root"),
        data_root=_root(r, t, "data_root"),
        runtime=_non_empty(r, t, "runtime"),
        experimental=r.get(t, "experimental", bool, ""),
        min_free_space=_size(r, t, "min_free_space", "0 turns the reserve off"),
        cache_max_size=_size(r, t, "cache_max_size", "0 keeps no cache"),
        cache_max_age=_duration(r, t, "cache_max_age"),
    )


def _non_empty(r: _Reader, t: dict[str, Any], key: str) -> str | None:
    value = r.get(t, key, str, "")
    return value or None


def _size(r: _Reader, t: dict[str, Any], key: str, zero: str) -> int | None:
    """A size: a string with a unit ("1GiB", "500MB") or an integer of bytes."""
    value = t.get(key)
    if value is None:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and value >= 0:
        return value
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError:
            pass
    shown = f'"{value}"' if isinstance(value, str) else str(value) if is_int \
        else f"({_toml_type(value)})"
    raise r.error(f'invalid {key} {shown}: give a size such as "1GiB" or "500MB", or a number '
                  f"of bytes ({zero})")


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(r: _Reader, t: dict[str, Any], key: str) -> int | None:
    """A duration: a string such as "30d", "12h", "90m", "45s", or an integer of seconds."""
    value = t.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value[:-1].isdigit() and value[-1:] in _DURATION_UNITS:
        return int(value[:-1]) * _DURATION_UNITS[value[-1]]
    shown = f'"{value}"' if isinstance(value, str) else f"({_toml_type(value)})"
    raise r.error(f'invalid {key} {shown}: give a duration such as "30d", "12h", "90m" or '
                  '"45s", or a number of seconds')


def _root(r: _Reader, t: dict[str, Any], key: str, where: str = "") -> Path | None:
    value = r.get(t, key, str, where) or None
    if value is None:
        return None
    if not os.path.isabs(value):
        name = f"{where}.{key}" if where else key
        raise r.error(f'"{name}" must be an absolute path, not "{value}"')
    return Path(os.path.normpath(value))


# The keys of containers-storage.conf(5) in the tables isula-builder reads (containers/storage
# 1.37, which the original vendors, and later versions). The format's other tables (thinpool,
# btrfs, zfs, vfs, aufs, pull_options) hold nothing isula-builder uses and are ignored whole.
_STORAGE_FORMAT_KEYS: dict[str, tuple[str, ...]] = {
    "": ("storage",),
    "storage": ("driver", "driver_priority", "graphroot", "imagestore", "options",
                "rootless_storage_path", "runroot", "transient_store"),
    "storage.options": (
        "additionalimagestores", "additionallayerstores", "aufs", "auto-userns-max-size",
        "auto-userns-min-size", "btrfs", "disable-volatile", "force_mask", "ignore_chown_errors",
        "mount_program", "mountopt", "ostree_repo", "overlay", "override_kernel_check",
        "pull_options", "remap-gids", "remap-group", "remap-uids", "remap-user",
        "root-auto-userns-user", "size", "skip_mount_home", "thinpool", "vfs", "zfs"),
    "storage.options.overlay": ("force_mask", "ignore_chown_errors", "inodes", "mount_program",
                                "mountopt", "size", "skip_mount_home", "use_composefs"),
}
# What isula-builder reads in each of those tables; everything else there is ignored.
_STORAGE_USED_KEYS: dict[str, tuple[str, ...]] = {
    "": ("storage",),
    "storage": ("driver", "runroot", "graphroot", "options"),
    "storage.options": ("mountopt", "overlay"),
    "storage.options.overlay": ("mountopt",),
}


def _storage_config(r: _Reader, t: dict[str, Any]) -> StorageConfig:
    notices = _ignored_storage_keys(r, t, "")
    storage = r.table(t, "storage", "")
    notices += _ignored_storage_keys(r, storage, "storage")
    driver = r.get(storage, "driver", str, "storage") or None  # "" is unset, as in the original
    if driver is not None:
        check_storage_driver(driver, r.error)
    options = r.table(storage, "options", "storage")
    notices += _ignored_storage_keys(r, options, "storage.options")
    overlay = r.table(options, "overlay", "storage.options")
    notices += _ignored_storage_keys(r, overlay, "storage.options.overlay")
    # containers/storage applies [storage.options] mountopt to the driver unless the driver's
    # own table sets one; both are checked, since either may be the one in force.
    mountopts = [r.get(table, "mountopt", str, where) or None
                 for table, where in ((overlay, "storage.options.overlay"),
                                      (options, "storage.options"))]
    for mountopt in mountopts:
        if mountopt is not None:
            check_mount_options(mountopt, r.error)
    return StorageConfig(
        driver=driver,
        mountopt=mountopts[0] or mountopts[1],
        run_root=_root(r, storage, "runroot", "storage"),
        graph_root=_root(r, storage, "graphroot", "storage"),
        notices=tuple(notices),
    )


def _ignored_storage_keys(r: _Reader, table: dict[str, Any], where: str) -> list[Notice]:
    """A warning for each key of `table` isula-builder does not read. Keys holding the format's
    "unset" values ("", [], an empty table, false) change nothing and are passed over quietly,
    so the sample files of the original and of containers/storage log nothing."""
    notices = []
    for key, value in table.items():
        if key in _STORAGE_USED_KEYS[where] or value in ("", [], {}, False):
            continue
        name = f"{where}.{key}" if where else key
        if key in _STORAGE_FORMAT_KEYS[where]:
            message = f'"{name}" is ignored: isula-builder does not use it'
        else:
            message = f'unknown key "{name}" is ignored'
        notices.append(Notice(logging.WARNING, f"config file {r.path}: {message}"))
    return notices


def check_storage_driver(driver: str, error: Any) -> None:
    if driver not in STORAGE_DRIVERS:
        raise error(f'storage driver "{driver}" is not supported (only overlay is)')


# Mount options that would weaken a build's isolation or make no sense for a read-only lower dir.
_FORBIDDEN_MOUNT_OPTIONS = ("suid", "dev", "exec", "rw", "remount", "bind", "rbind")


def check_mount_options(mountopt: str, error: Any) -> None:
    for option in mountopt.split(","):
        name = option.split("=", 1)[0].strip()
        if not name:
            raise error(f'mount options "{mountopt}" contain an empty option')
        if name in _FORBIDDEN_MOUNT_OPTIONS:
            raise error(f'mount option "{name}" is not allowed for overlay layers')


def _registries(r: _Reader, t: dict[str, Any]) -> Registries:
    r.check_keys(t, ("registries",), "")
    registries = r.table(t, "registries", "")
    r.check_keys(registries, ("search", "insecure", "block"), "registries")
    lists: dict[str, tuple[str, ...]] = {}
    for kind in ("search", "insecure", "block"):
        where = f"registries.{kind}"
        section = r.table(registries, kind, "registries")
        r.check_keys(section, ("registries",), where)
        entries = r.strings(section, "registries", where)
        for entry in entries:
            if not entry or "://" in entry or any(c.isspace() for c in entry):
                raise r.error(f'"{where}.registries" entry "{entry}" must be a registry '
                              "host[:port] (optionally with a path), without a scheme")
        lists[kind] = entries
    return Registries(**lists)


def _policy(path: Path, data: bytes) -> SignaturePolicy:
    def error(problem: str) -> ConfigError:
        return ConfigError(f"config file {path}: {problem}")

    try:
        doc = jsondoc.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise error("must be a JSON object")
    for key in doc:
        if key not in ("default", "transports"):
            raise error(f'unknown key "{key}" (known keys: default, transports)')
    if "default" not in doc:
        raise error('"default" is required (e.g. [{"type": "insecureAcceptAnything"}])')
    default = _requirements(doc["default"], "default", error)
    transports_doc = doc.get("transports", {})
    if not isinstance(transports_doc, dict):
        raise error('"transports" must be an object')
    transports: dict[str, dict[str, tuple[PolicyRequirement, ...]]] = {}
    for transport, scopes in transports_doc.items():
        if not isinstance(scopes, dict):
            raise error(f'"transports.{transport}" must be an object of scopes')
        transports[transport] = {
            scope: _requirements(reqs, f"transports.{transport}.{scope}", error)
            for scope, reqs in scopes.items()
        }
    return SignaturePolicy(default=default, transports=transports)


def _requirements(value: Any, where: str, error: Any) -> tuple[PolicyRequirement, ...]:
    if not isinstance(value, list) or not value:
        raise error(f'"{where}" must be a non-empty list of requirements')
    result = []
    for req in value:
        if not isinstance(req, dict) or not isinstance(req.get("type"), str):
            raise error(f'every requirement in "{where}" must be an object with a "type"')
        kind = req["type"]
        if kind in POLICY_TYPES_UNSUPPORTED:
            raise error(f'requirement type "{kind}" in "{where}" needs signature verification, '
                        'which isula-builder does not support; use "insecureAcceptAnything" '
                        'or "reject"')
        if kind not in POLICY_TYPES_SUPPORTED:
            raise error(f'unknown requirement type "{kind}" in "{where}"')
        extra = set(req) - {"type"}
        if extra:
            raise error(f'requirement "{kind}" in "{where}" takes no other keys '
                        f"(found {', '.join(sorted(extra))})")
        result.append(PolicyRequirement(kind))
    return tuple(result)
