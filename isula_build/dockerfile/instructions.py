"""Nodes → one typed, validated dataclass per instruction (BuildKit's instructions package).

Values are kept as written (unexpanded); ``expand(fn)`` returns a copy with every field that
docker expands run through ``fn`` (the one word expander, lex.py).  Instructions docker never
expands (RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER, ONBUILD) have no ``expand``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Union

from isula_build.units import parse_go_duration

from .dockerignore import DockerignoreMatcher
from .errors import DockerfileError
from .parser import Heredoc, Node, extract_flags, split_raw_words
from .runmount import check_mount, expand_mount
from .sources import git_source, is_url

Expander = Callable[[str], str]

_WHITESPACE = re.compile(r"[\t\v\f\r\n ]+")


@dataclass(frozen=True)
class Base:
    line: int
    original: str = field(repr=False, compare=False)


@dataclass(frozen=True)
class FromInstruction(Base):
    image: str
    name: str | None = None  # lower case (stage names are case-insensitive)
    platform: str | None = None

    def expand(self, ex: Expander) -> FromInstruction:
        return replace(self, image=ex(self.image),
                       platform=ex(self.platform) if self.platform is not None else None)


@dataclass(frozen=True)
class RunInstruction(Base):
    command: tuple[str, ...]  # exec form: argv; shell form: one string for the SHELL
    json: bool
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[str, ...] = ()   # --mount values as written (runmount.py), expanded by expand()
    network: str | None = None
    security: str | None = None

    def expand(self, ex: Expander) -> RunInstruction:
        """BuildKit expands the --mount values only; the command is the shell's to expand."""
        if not self.mounts:
            return self
        return replace(self, mounts=tuple(expand_mount(m, ex) for m in self.mounts))


@dataclass(frozen=True)
class CmdInstruction(Base):
    command: tuple[str, ...]
    json: bool


@dataclass(frozen=True)
class EntrypointInstruction(Base):
    command: tuple[str, ...]
    json: bool


@dataclass(frozen=True)
class ShellInstruction(Base):
    shell: tuple[str, ...]


@dataclass(frozen=True)
class MaintainerInstruction(Base):
    maintainer: str


def _expand_pairs(pairs: tuple[tuple[str, str], ...], ex: Expander) -> tuple[tuple[str, str], ...]:
    return tuple((ex(k), ex(v)) for k, v in pairs)


@dataclass(frozen=True)
class LabelInstruction(Base):
    labels: tuple[tuple[str, str], ...]

    def expand(self, ex: Expander) -> LabelInstruction:
        return replace(self, labels=_expand_pairs(self.labels, ex))


@dataclass(frozen=True)
class EnvInstruction(Base):
    env: tuple[tuple[str, str], ...]

    def expand(self, ex: Expander) -> EnvInstruction:
        return replace(self, env=_expand_pairs(self.env, ex))


@dataclass(frozen=True)
class ArgInstruction(Base):
    args: tuple[tuple[str, str | None], ...]  # (name, default or None)

    def expand(self, ex: Expander) -> ArgInstruction:
        return replace(self, args=tuple((ex(k), ex(v) if v is not None else None) for k, v in self.args))


@dataclass(frozen=True)
class ExposeInstruction(Base):
    ports: tuple[str, ...]

    def expand(self, ex: Expander) -> ExposeInstruction:
        return replace(self, ports=tuple(ex(p) for p in self.ports))

    def port_specs(self) -> list[str]:
        """Every exposed port as docker writes it in ExposedPorts: ``"80/tcp"`` (ranges expanded)."""
        specs: list[str] = []
        for port in self.ports:
            specs.extend(parse_port_spec(port, self.line))
        return specs


@dataclass(frozen=True)
class CopyInstruction(Base):
    sources: tuple[str, ...]
    dest: str
    json: bool
    heredocs: tuple[Heredoc, ...] = ()
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()

    def expand(self, ex: Expander) -> CopyInstruction:
        # --from is never expanded (BuildKit refuses variables there: they would hide which
        # stage depends on which); plan.py says so when one is used.
        return replace(self, sources=tuple(ex(s) for s in self.sources), dest=ex(self.dest),
                       chown=_opt(ex, self.chown), chmod=_opt(ex, self.chmod),
                       excludes=tuple(ex(e) for e in self.excludes))


@dataclass(frozen=True)
class AddInstruction(Base):
    sources: tuple[str, ...]
    dest: str
    json: bool
    heredocs: tuple[Heredoc, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    checksum: str | None = None
    keep_git_dir: bool = False
    excludes: tuple[str, ...] = ()
    unpack: bool | None = None   # None: local archives are unpacked, URLs are not

    def expand(self, ex: Expander) -> AddInstruction:
        return replace(self, sources=tuple(ex(s) for s in self.sources), dest=ex(self.dest),
                       chown=_opt(ex, self.chown), chmod=_opt(ex, self.chmod),
                       checksum=_opt(ex, self.checksum),
                       excludes=tuple(ex(e) for e in self.excludes))


@dataclass(frozen=True)
class VolumeInstruction(Base):
    volumes: tuple[str, ...]

    def expand(self, ex: Expander) -> VolumeInstruction:
        return replace(self, volumes=tuple(ex(v) for v in self.volumes))


@dataclass(frozen=True)
class UserInstruction(Base):
    user: str

    def expand(self, ex: Expander) -> UserInstruction:
        return replace(self, user=ex(self.user))


@dataclass(frozen=True)
class WorkdirInstruction(Base):
    path: str

    def expand(self, ex: Expander) -> WorkdirInstruction:
        return replace(self, path=ex(self.path))


@dataclass(frozen=True)
class StopSignalInstruction(Base):
    signal: str

    def expand(self, ex: Expander) -> StopSignalInstruction:
        return replace(self, signal=ex(self.signal))


@dataclass(frozen=True)
class HealthcheckInstruction(Base):
    """``test`` is docker's Healthcheck.Test: ["NONE"], ["CMD", argv...] or ["CMD-SHELL", cmd]."""

    test: tuple[str, ...]
    interval: int | None = None  # nanoseconds, like docker's image config
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None


@dataclass(frozen=True)
class OnbuildInstruction(Base):
    expression: str  # the trigger as written, stored in the image config's OnBuild list
    trigger: Instruction


Instruction = Union[
    FromInstruction, RunInstruction, CmdInstruction, EntrypointInstruction, ShellInstruction,
    MaintainerInstruction, LabelInstruction, EnvInstruction, ArgInstruction, ExposeInstruction,
    CopyInstruction, AddInstruction, VolumeInstruction, UserInstruction, WorkdirInstruction,
    StopSignalInstruction, HealthcheckInstruction, OnbuildInstruction,
]


def _opt(ex: Expander, value: str | None) -> str | None:
    return ex(value) if value is not None else None


# --- flags ---------------------------------------------------------------------------------

_BOOL, _STRING, _STRINGS = "bool", "string", "strings"
_FLAGS: dict[str, dict[str, str]] = {
    "from": {"platform": _STRING},
    "run": {"mount": _STRINGS, "network": _STRING, "security": _STRING},
    "copy": {"from": _STRING, "chown": _STRING, "chmod": _STRING, "link": _BOOL,
             "parents": _BOOL, "exclude": _STRINGS},
    "add": {"chown": _STRING, "chmod": _STRING, "link": _BOOL, "checksum": _STRING,
            "keep-git-dir": _BOOL, "exclude": _STRINGS, "unpack": _BOOL},
    "healthcheck": {"interval": _STRING, "timeout": _STRING, "start-period": _STRING,
                    "start-interval": _STRING, "retries": _STRING},
}


def _parse_flags(keyword: str, words: tuple[str, ...], line: int) -> dict[str, str | bool | list[str]]:
    """Validates flags as docker's BFlags does: known names, values where needed, no repeats."""
    allowed = _FLAGS.get(keyword, {})
    values: dict[str, str | bool | list[str]] = {}
    for word in words:
        if not word.startswith("--"):
            raise DockerfileError(f"arg should start with -- : {word}", line)
        name, eq, value = word[2:].partition("=")
        kind = allowed.get(name)
        if kind is None:
            hint = difflib.get_close_matches(name, list(allowed), n=1)
            more = f" (did you mean --{hint[0]}?)" if hint else ""
            raise DockerfileError(f"unknown flag: --{name} for {keyword.upper()}{more}", line)
        if name in values and kind != _STRINGS:
            raise DockerfileError(f"duplicate flag specified: --{name}", line)
        if kind == _BOOL:
            if eq and not value:
                raise DockerfileError(f"missing a value on flag: --{name}", line)
            if value.lower() not in ("", "true", "false"):
                raise DockerfileError(f"expecting boolean value for flag --{name}, not: {value}", line)
            values[name] = value.lower() != "false"
        else:
            if not eq:
                raise DockerfileError(f"missing a value on flag: --{name}", line)
            if kind == _STRINGS:
                values.setdefault(name, [])
                values[name].append(value)  # type: ignore[union-attr]  # the _STRINGS kind always holds a list
            else:
                values[name] = value
    return values


# --- argument forms --------------------------------------------------------------------------


def _json_array(rest: str, line: int) -> list[str] | None:
    """The exec (JSON) form, or None when ``rest`` is not a JSON array (then it is shell form)."""
    if not rest.startswith("["):
        return None
    try:
        value = _JSON.decode(rest)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise DockerfileError("when using JSON array syntax, arrays must be comprised of strings only", line)
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(name)  # Go's JSON has no NaN/Infinity: such text is shell form


_JSON = json.JSONDecoder(parse_constant=_reject_constant)  # made once: building one per line is slow


def _command(node: Node) -> tuple[tuple[str, ...], bool]:
    argv = _json_array(node.rest, node.start_line)
    if argv is not None:
        return tuple(argv), True
    return ((node.rest,) if node.rest else ()), False


def _list(node: Node) -> tuple[list[str], bool]:
    argv = _json_array(node.rest, node.start_line)
    if argv is not None:
        return argv, True
    return [w for w in _WHITESPACE.split(node.rest) if w], False


def _key_values(node: Node, escape: str, what: str) -> tuple[tuple[str, str], ...]:
    """ENV and LABEL: ``k=v k2="v 2"`` or the old ``k value with spaces`` form."""
    words = split_raw_words(node.rest, escape)
    if not words:
        raise DockerfileError(f"{what} requires at least one argument", node.start_line)
    if "=" not in words[0]:
        parts = _WHITESPACE.split(node.rest, maxsplit=1)
        if len(parts) < 2 or not parts[1]:
            raise DockerfileError(f"{what} must have two arguments", node.start_line)
        return ((parts[0], parts[1]),)
    pairs: list[tuple[str, str]] = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise DockerfileError(f"Syntax error - can't find = in {json.dumps(word)}. "
                                  "Must be of the form: name=value", node.start_line)
        if not key:
            raise DockerfileError(f"{what} names can not be blank", node.start_line)
        pairs.append((key, value))
    return tuple(pairs)


def _duration_flag(flags: dict[str, str | bool | list[str]], name: str, line: int) -> int | None:
    raw = flags.get(name)
    if raw is None:
        return None
    try:
        value = parse_go_duration(str(raw))
    except ValueError:
        raise DockerfileError(f"invalid duration for --{name}: {raw!r} (use e.g. 30s, 1m30s)", line) from None
    if value != 0 and value < 1_000_000:
        raise DockerfileError(f"Interval \"{name}\" cannot be less than 1ms", line)
    return value


def _healthcheck(node: Node, flags: dict[str, str | bool | list[str]]) -> HealthcheckInstruction:
    line = node.start_line
    if not node.rest:
        raise DockerfileError("HEALTHCHECK requires at least one argument", line)
    parts = _WHITESPACE.split(node.rest, maxsplit=1)
    kind = parts[0].upper()
    if kind == "NONE":
        if len(parts) > 1 or flags:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments", line)
        return HealthcheckInstruction(line, node.original, ("NONE",))
    if kind != "CMD":
        raise DockerfileError(f"Unknown type {json.dumps(parts[0])} in HEALTHCHECK (try CMD)", line)
    if len(parts) < 2 or not parts[1]:
        raise DockerfileError("Missing command after HEALTHCHECK CMD", line)
    argv = _json_array(parts[1], line)
    test = ("CMD", *argv) if argv is not None else ("CMD-SHELL", parts[1])
    retries: int | None = None
    if "retries" in flags:
        try:
            retries = int(str(flags["retries"]), 10)
        except ValueError:
            raise DockerfileError(f"invalid value for --retries: {flags['retries']!r}", line) from None
        if retries < 0:
            raise DockerfileError(f"--retries cannot be negative ({retries})", line)
    return HealthcheckInstruction(
        line, node.original, test,
        interval=_duration_flag(flags, "interval", line),
        timeout=_duration_flag(flags, "timeout", line),
        start_period=_duration_flag(flags, "start-period", line),
        start_interval=_duration_flag(flags, "start-interval", line),
        retries=retries,
    )


def _copy_args(node: Node, what: str) -> tuple[tuple[str, ...], str, bool]:
    args, is_json = _list(node)
    # A heredoc stands for a source file, so "COPY <<EOF /dest" has two arguments.
    if len(args) < 2:
        raise DockerfileError(f"{what} requires at least two arguments, but only "
                              f"{'one was' if args else 'none were'} provided. Destination could not be determined.",
                              node.start_line)
    return tuple(args[:-1]), args[-1], is_json


def _exactly_one(node: Node, what: str) -> str:
    if not node.rest:
        raise DockerfileError(f"{what} requires exactly one argument", node.start_line)
    return node.rest


_STAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
MAX_STAGE_NAME = 64
ALL_KEYWORDS = ("from", "run", "cmd", "label", "maintainer", "expose", "env", "add", "copy",
                "entrypoint", "volume", "user", "workdir", "arg", "onbuild", "stopsignal",
                "healthcheck", "shell")


def _from(node: Node, flags: dict[str, str | bool | list[str]]) -> FromInstruction:
    words = [w for w in _WHITESPACE.split(node.rest) if w]
    line = node.start_line
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise DockerfileError("FROM requires either one or three arguments (FROM image [AS name])", line)
    name = None
    if len(words) == 3:
        name = words[2].lower()
        if len(name) > MAX_STAGE_NAME:
            raise DockerfileError(f"invalid stage name {words[2]!r}: at most {MAX_STAGE_NAME} characters", line)
        if not _STAGE_NAME.fullmatch(name) or name.isdigit():
            raise DockerfileError(f"invalid stage name {words[2]!r}: use letters, digits, '.', '_' and '-', "
                                  "start with a letter or digit, and not only digits", line)
    platform = flags.get("platform")
    return FromInstruction(line, node.original, words[0], name, str(platform) if platform is not None else None)


def parse_instruction(node: Node, escape: str = "\\") -> Instruction:
    """The typed instruction for one node; raises DockerfileError naming the line."""
    keyword, line, rest, orig = node.keyword, node.start_line, node.rest, node.original
    if keyword not in ALL_KEYWORDS:
        hint = difflib.get_close_matches(keyword, ALL_KEYWORDS, n=1)
        more = f" (did you mean {hint[0].upper()}?)" if hint else ""
        raise DockerfileError(f"unknown instruction: {keyword.upper()}{more}", line)
    flags = _parse_flags(keyword, node.flags, line)
    if keyword == "from":
        return _from(node, flags)
    if keyword == "run":
        command, is_json = _command(node)
        if not command and not node.heredocs:
            raise DockerfileError("RUN requires at least one argument", line)
        mounts = _strings(flags, "mount")
        for mount in mounts:
            check_mount(mount, line)
        network = _str(flags, "network")
        if network is not None and network not in ("default", "none", "host"):
            raise DockerfileError(f"unsupported network mode {network!r} (use default, none or host)", line)
        security = _str(flags, "security")
        if security is not None and security not in ("sandbox", "insecure"):
            raise DockerfileError(f"unsupported security mode {security!r} (use sandbox or insecure)", line)
        return RunInstruction(line, orig, command, is_json, node.heredocs, mounts, network, security)
    if keyword == "cmd":
        return CmdInstruction(line, orig, *_command(node))
    if keyword == "entrypoint":
        return EntrypointInstruction(line, orig, *_command(node))
    if keyword == "shell":
        argv = _json_array(rest, line)
        if argv is None:
            raise DockerfileError("SHELL requires the arguments to be in JSON form", line)
        if not argv:
            raise DockerfileError("SHELL requires at least one argument", line)
        return ShellInstruction(line, orig, tuple(argv))
    if keyword == "maintainer":
        return MaintainerInstruction(line, orig, _exactly_one(node, "MAINTAINER"))
    if keyword == "label":
        return LabelInstruction(line, orig, _key_values(node, escape, "LABEL"))
    if keyword == "env":
        return EnvInstruction(line, orig, _key_values(node, escape, "ENV"))
    if keyword == "arg":
        words = split_raw_words(rest, escape)
        if not words:
            raise DockerfileError("ARG requires at least one argument", line)
        args: list[tuple[str, str | None]] = []
        for word in words:
            key, eq, value = word.partition("=")
            if not key:
                raise DockerfileError("ARG names can not be blank", line)
            args.append((key, value if eq else None))
        return ArgInstruction(line, orig, tuple(args))
    if keyword == "expose":
        ports = tuple(w for w in _WHITESPACE.split(rest) if w)
        if not ports:
            raise DockerfileError("EXPOSE requires at least one argument", line)
        return ExposeInstruction(line, orig, ports)
    if keyword == "copy":
        sources, dest, is_json = _copy_args(node, "COPY")
        copy = CopyInstruction(line, orig, sources, dest, is_json, node.heredocs,
                               _str(flags, "from"), _str(flags, "chown"), _str(flags, "chmod"),
                               bool(flags.get("link", False)), bool(flags.get("parents", False)),
                               _excludes(flags, line))
        check_copy_flags(copy, literal=True)
        return copy
    if keyword == "add":
        sources, dest, is_json = _copy_args(node, "ADD")
        unpack = flags.get("unpack")
        add = AddInstruction(line, orig, sources, dest, is_json, node.heredocs,
                             _str(flags, "chown"), _str(flags, "chmod"), bool(flags.get("link", False)),
                             _str(flags, "checksum"), bool(flags.get("keep-git-dir", False)),
                             _excludes(flags, line), unpack if isinstance(unpack, bool) else None)
        check_copy_flags(add, literal=True)
        return add
    if keyword == "volume":
        volumes, _ = _list(node)
        if not volumes:
            raise DockerfileError("VOLUME requires at least one argument", line)
        if any(not v.strip() for v in volumes):
            raise DockerfileError("VOLUME specified can not be an empty string", line)
        return VolumeInstruction(line, orig, tuple(volumes))
    if keyword == "user":
        return UserInstruction(line, orig, _exactly_one(node, "USER"))
    if keyword == "workdir":
        return WorkdirInstruction(line, orig, _exactly_one(node, "WORKDIR"))
    if keyword == "stopsignal":
        return StopSignalInstruction(line, orig, _exactly_one(node, "STOPSIGNAL"))
    if keyword == "healthcheck":
        return _healthcheck(node, flags)
    return _onbuild(node, escape)


def _str(flags: dict[str, str | bool | list[str]], name: str) -> str | None:
    value = flags.get(name)
    return str(value) if value is not None else None


def _strings(flags: dict[str, str | bool | list[str]], name: str) -> tuple[str, ...]:
    """The values of a repeatable flag (--mount), in the order written."""
    value = flags.get(name, [])
    return tuple(value) if isinstance(value, list) else (str(value),)


def _excludes(flags: dict[str, str | bool | list[str]], line: int) -> tuple[str, ...]:
    excludes = _strings(flags, "exclude")
    if any(not e.strip() for e in excludes):
        raise DockerfileError("--exclude needs a pattern", line)
    exclude_matcher(excludes, line)  # refuses a bad pattern here, before any step runs
    return excludes


def exclude_matcher(excludes: tuple[str, ...], line: int) -> DockerignoreMatcher | None:
    """COPY/ADD --exclude patterns as one matcher (.dockerignore's syntax and rules, applied to
    paths relative to the source); None without patterns."""
    if not excludes:
        return None
    try:
        return DockerignoreMatcher.from_text("\n".join(excludes))
    except DockerfileError as exc:
        raise DockerfileError(f"invalid --exclude pattern: {exc.reason}", line) from None


_CHECKSUM = re.compile(r"(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})")


def check_copy_flags(ins: CopyInstruction | AddInstruction, literal: bool = False) -> None:
    """The flags that depend on what the sources are (BuildKit's rules): ADD --checksum wants
    one http(s) source, --keep-git-dir git sources only, COPY --parents no heredocs. Run on
    the instruction as written (`literal`: sources holding a variable are judged once
    expanded) and again by the engine on the expanded one."""
    def known(source: str) -> bool:
        return not literal or "$" not in source

    if isinstance(ins, CopyInstruction):
        if ins.parents and ins.heredocs:
            raise DockerfileError("COPY --parents cannot copy a heredoc", ins.line)
        return
    checksum = ins.checksum
    if checksum is not None and known(checksum) and not _CHECKSUM.fullmatch(checksum):
        raise DockerfileError(f"invalid --checksum {checksum!r}: use sha256:<64 hex digits> "
                              "(or sha384:, sha512:)", ins.line)
    if checksum is not None and len(ins.sources) > 1:
        raise DockerfileError("ADD --checksum needs a single source", ins.line)
    for source in ins.sources:
        if not known(source):
            continue
        git = git_source(source) is not None
        if checksum is not None and (git or not is_url(source)):
            raise DockerfileError(f"ADD --checksum is for an http(s) source, not {source}",
                                  ins.line)
        if ins.keep_git_dir and not git:
            raise DockerfileError(f"ADD --keep-git-dir is for a git repository, not {source}",
                                  ins.line)


def _onbuild(node: Node, escape: str) -> OnbuildInstruction:
    line = node.start_line
    if not node.rest:
        raise DockerfileError("ONBUILD requires at least one argument", line)
    parts = re.split(r"[\t\v\f\r ]+", node.rest, maxsplit=1)
    keyword = parts[0].lower()
    if keyword == "onbuild":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", line)
    if keyword in ("from", "maintainer"):
        raise DockerfileError(f"{keyword.upper()} isn't allowed as an ONBUILD trigger", line)
    flags, rest = extract_flags(parts[1]) if len(parts) == 2 else ((), "")
    trigger_node = Node(keyword, flags, rest.strip(), line, node.end_line, node.rest)
    return OnbuildInstruction(line, node.original, node.rest, parse_instruction(trigger_node, escape))


def parse_trigger(expression: str, line: int = 1, escape: str = "\\") -> Instruction:
    """Parses one ONBUILD trigger taken from a base image's config (the engine runs them)."""
    parts = re.split(r"[\t\v\f\r ]+", expression.strip(), maxsplit=1)
    flags, rest = extract_flags(parts[1]) if len(parts) == 2 else ((), "")
    node = Node(parts[0].lower(), flags, rest.strip(), line, line, expression)
    if node.keyword in ("onbuild", "from", "maintainer"):
        raise DockerfileError(f"{node.keyword.upper()} isn't allowed as an ONBUILD trigger", line)
    return parse_instruction(node, escape)


_PROTOCOLS = ("tcp", "udp", "sctp")


def is_ascii_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone also accepts "²", which int() refuses


def parse_port_spec(spec: str, line: int) -> list[str]:
    """``80``, ``80/udp``, ``8000-8010/tcp`` → ``["80/tcp"]``… as docker's nat.ParsePortSpecs."""
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in _PROTOCOLS:
        raise DockerfileError(f"invalid protocol in EXPOSE {spec!r}: use tcp, udp or sctp", line)
    if ":" in port:
        raise DockerfileError(f"EXPOSE {spec!r}: a host port mapping cannot be set in a Dockerfile", line)
    low, dash, high = port.partition("-")
    if not is_ascii_number(low) or (dash and not is_ascii_number(high)):
        raise DockerfileError(f"invalid port in EXPOSE: {spec!r}", line)
    start = int(low)
    end = int(high) if dash else start
    if start > 65535 or end > 65535:
        raise DockerfileError(f"invalid port in EXPOSE: {spec!r}", line)
    if end < start:
        raise DockerfileError(f"invalid port range in EXPOSE: {spec!r}", line)
    return [f"{p}/{proto}" for p in range(start, end + 1)]
