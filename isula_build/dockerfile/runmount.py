"""`RUN --mount=...` values: BuildKit's grammar (instructions/commands_runmount.go), checked.

A value is one CSV record of `key=value` fields (`type=bind` when no type is given); the bare
words `ro`/`readonly`, `rw`/`readwrite` and `required` need no value. Values are kept as
written in the instruction and expanded, field by field, with the stage's build environment
(`expand_mount`), as BuildKit's RunCommand.Expand does; `from` takes no variables (its stage
must be known to plan the build). `parse_mount` gives the typed, checked `MountSpec`.

Unlike BuildKit, fields may come in any order (BuildKit refuses `required` or `size` written
before the `type` they belong to), and `target` is required for every type but secret and
ssh (BuildKit's documentation says so; its code would mount at the WORKDIR instead).
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import DockerfileError

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_ALIASES = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly",
            "rw": "readwrite"}
_KEYS = ("type", "from", "source", "target", "readonly", "readwrite", "id", "sharing",
         "required", "size", "mode", "uid", "gid", "env")
_BARE = ("readonly", "readwrite", "required")
_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")
# go-units RAMInBytes: binary units, an optional i and b.
_RAM = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_RAM_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MAX_ID = 2**32 - 1
DEFAULT_SSH_ID = "default"   # the agent an ssh mount without an id forwards


@dataclass(frozen=True)
class MountSpec:
    """One checked --mount. `target` as written (relative ones are under the WORKDIR)."""

    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str | None = None
    readonly: bool = True       # bind, secret, ssh: read-only unless rw; cache, tmpfs: writable
    id: str = ""                # cache: the cache's name (default: the target); secret/ssh: theirs
    sharing: str = "shared"
    mode: int | None = None     # cache, secret, ssh only
    uid: int | None = None
    gid: int | None = None
    size: int | None = None     # tmpfs only: bytes
    required: bool = False      # secret, ssh only
    env: str | None = None      # secret only: the variable to expose it as

    @property
    def cache_id(self) -> str:
        return self.id or posixpath.normpath(self.target)

    @property
    def secret_id(self) -> str:
        """A secret's id: `id` (or `source`, BuildKit's older name), else the target's name."""
        return self.source or self.id or posixpath.basename(self.target.rstrip("/"))

    @property
    def secret_file(self) -> str | None:
        """Where a secret's file goes: `target`, by default /run/secrets/ID unless `env` asks
        for a variable only (BuildKit's rule); None: no file."""
        if self.target:
            return self.target
        return None if self.env else "/run/secrets/" + posixpath.basename(self.secret_id)

    @property
    def ssh_id(self) -> str:
        return self.id or DEFAULT_SSH_ID

    def container_target(self, workdir: str) -> str:
        """The absolute mount point: a relative target is under the WORKDIR (BuildKit's join)."""
        return _clean(posixpath.join(workdir or "/", self.target))


def _clean(path: str) -> str:
    """`path` made absolute and normalized (`//x` too, which posixpath keeps as is)."""
    return posixpath.normpath("/" + path.lstrip("/"))


def _fields(text: str, line: int) -> list[tuple[str, str | None]]:
    """The (lower-case canonical key, value or None for a bare word) pairs of one --mount."""
    try:
        records = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        raise _error(text, f"failed to parse csv mounts: {exc}", line) from None
    if len(records) != 1 or not records[0]:
        raise _error(text, "failed to parse csv mounts: expected one line of key=value fields", line)
    pairs: list[tuple[str, str | None]] = []
    for field in records[0]:
        key, eq, value = field.partition("=")
        key = _ALIASES.get(key.lower(), key.lower())
        if not eq and key not in _BARE:
            raise _error(text, f"invalid field '{field}' must be a key=value pair", line)
        if key not in _KEYS:
            raise _error(text, f"unexpected key '{key}' in '{field}' (use one of: "
                               f"{', '.join(_KEYS)})", line)
        pairs.append((key, value if eq else None))
    return pairs


def _error(text: str, reason: str, line: int) -> DockerfileError:
    return DockerfileError(f"invalid --mount={text}: {reason}", line)


def check_mount(text: str, line: int) -> None:
    """The checks that need no expansion: the CSV, the keys, `from` without variables, and —
    when no value holds a `$` — everything `parse_mount` checks."""
    pairs = _fields(text, line)
    for key, value in pairs:
        if key == "from" and value is not None and re.search(r"\$.", value):
            raise _error(text, "'from' doesn't support variable expansion, define alias stage "
                               "instead", line)
    if not any(value and "$" in value for _, value in pairs):
        parse_mount(text, line)


def mount_from(text: str) -> str | None:
    """The stage or image a --mount reads (`from`), for the plan; None for none (tmpfs, secret
    and ssh take nothing from one). Call after check_mount."""
    pairs = dict(_fields(text, 0))
    if (pairs.get("type") or "").lower() in ("tmpfs", "secret", "ssh"):
        return None
    return pairs.get("from") or None


def expand_mount(text: str, ex: Callable[[str], str]) -> str:
    """The --mount with each value expanded, written back as one CSV record."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="")
    writer.writerow([key if value is None else f"{key}={ex(value)}"
                     for key, value in _fields(text, 0)])
    return out.getvalue()


def _bool(text: str, key: str, value: str, line: int) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _error(text, f"invalid value for {key}: {value}", line)


def _number(text: str, key: str, value: str, base: int, line: int) -> int:
    digits = "01234567" if base == 8 else "0123456789"
    if not value or any(c not in digits for c in value) or int(value, base) > MAX_ID:
        raise _error(text, f"invalid value {value} for {key}", line)
    return int(value, base)


def parse_ram_size(value: str) -> int:
    """Bytes in a tmpfs size as go-units' RAMInBytes reads it ("64m", "1GiB", "4096");
    ValueError when it is not one."""
    match = _RAM.fullmatch(value)
    if match is None:
        raise ValueError(value)
    return int(float(match.group(1)) * _RAM_FACTORS[(match.group(2) or "").lower()])


def parse_mount(text: str, line: int) -> MountSpec:
    """The checked mount of an expanded --mount value; DockerfileError naming the line."""
    pairs = _fields(text, line)
    values = dict(pairs)
    kind = (values["type"] or "").lower() if "type" in values else "bind"
    if kind not in MOUNT_TYPES:
        raise _error(text, f"unsupported mount type {values.get('type')!r} (use one of: "
                           f"{', '.join(MOUNT_TYPES)})", line)
    readonly = kind not in ("cache", "tmpfs")
    args: dict = {}
    for key, value in pairs:
        if key in ("readonly", "readwrite"):
            flag = True if value is None else _bool(text, key, value, line)
            readonly = flag if key == "readonly" else not flag
        elif key == "required":
            if kind not in ("secret", "ssh"):
                raise _error(text, f"unexpected key 'required' for mount type '{kind}'", line)
            args["required"] = True if value is None else _bool(text, key, value, line)
        elif key == "size":
            assert value is not None
            if kind != "tmpfs":
                raise _error(text, f"unexpected key 'size' for mount type '{kind}'", line)
            try:
                args["size"] = parse_ram_size(value)
            except ValueError:
                raise _error(text, f"invalid value for size: {value}", line) from None
        elif key == "sharing":
            assert value is not None
            if kind != "cache":
                raise _error(text, f"invalid cache sharing set for {kind} mount", line)
            if value.lower() not in SHARING_MODES:
                raise _error(text, f"unsupported sharing value {value!r} (use one of: "
                                   f"{', '.join(SHARING_MODES)})", line)
            args["sharing"] = value.lower()
        elif key in ("mode", "uid", "gid"):
            assert value is not None
            if kind not in ("cache", "secret", "ssh"):
                raise _error(text, f"{key} not allowed for {kind!r} type mounts", line)
            args[key] = _number(text, key, value, 8 if key == "mode" else 10, line)
        elif key == "env":
            if kind != "secret":
                raise _error(text, f"unexpected key 'env' for mount type '{kind}'", line)
            args["env"] = value
        elif key == "from":
            args["from_"] = value or None
        elif key != "type":
            args[key] = value
    spec = MountSpec(type=kind, readonly=readonly, **args)
    _check_spec(text, spec, line)
    return spec


def _check_spec(text: str, spec: MountSpec, line: int) -> None:
    if spec.type == "secret":
        if spec.from_ is not None:
            raise _error(text, "secret mount should not have a from", line)
        if not (spec.source or spec.target or spec.id):
            raise _error(text, "invalid secret mount. one of source, target required", line)
        if spec.source and spec.id:
            raise _error(text, "both source and id can't be set", line)
        if spec.env is not None and not re.fullmatch(r"[^=\0]+", spec.env):
            raise _error(text, f"invalid value for env: {spec.env!r} is no variable name", line)
        return
    if spec.type == "ssh":
        if spec.source:
            raise _error(text, "ssh does not support source", line)
        if spec.from_ is not None:
            raise _error(text, "ssh mount should not have a from", line)
        return
    if not spec.target:
        raise _error(text, f"a {spec.type} mount needs a target", line)
    if spec.target.startswith("/") and _clean(spec.target) == "/":
        raise _error(text, f'invalid mount target "{spec.target}": "/" cannot be mounted over',
                     line)


__all__ = ["DEFAULT_SSH_ID", "MOUNT_TYPES", "MountSpec", "SHARING_MODES", "check_mount", "expand_mount",
           "mount_from", "parse_mount", "parse_ram_size"]
