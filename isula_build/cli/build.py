"""ctr-img build: checks the flags, reads the Dockerfile, sends Build and follows Status.

Everything that can be refused locally (context, Dockerfile, -o spec, --build-static time,
--cap-add, --format) is refused before the daemon is contacted.
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from isula_build.cli.common import (
    ParserContext, absolute, add_compression_flag, new_id, public_key_path, session)
from isula_build.cli.progress import add_progress_flag, open_output
from isula_build.cli.secrets import load_secrets
from isula_build.cli.sshforward import AgentSpec, parse_ssh_flags
from isula_build.errors import InvalidArgument

if TYPE_CHECKING:
    from isula_build.cli.connection import Connection
    from isula_build.cli.progress import Output

MAX_DOCKERFILE_SIZE = 1024 * 1024
BUILD_TIME_KEY = "build-time"
BUILD_TIME_LAYOUT = "%Y-%m-%d %H:%M:%S"
IMAGE_FORMATS = ("oci", "docker")
DOCKER_IMAGE_SCHEME = "docker-image://"
OCI_LAYOUT_SCHEME = "oci-layout://"

# Build args naming these are secrets in the original's eyes (proxy URLs carry credentials);
# one of them among the args makes the client encrypt all args.
PROXY_ARGS = frozenset({
    "http_proxy", "https_proxy", "ftp_proxy", "no_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY",
})

# The Linux capabilities a RUN may be granted with --cap-add.
CAPABILITIES = frozenset(f"CAP_{name}" for name in (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
))

EXAMPLE = """\
isula-build ctr-img build -f Dockerfile .
isula-build ctr-img build -f Dockerfile -o docker-archive:name.tar:image:tag .
isula-build ctr-img build -f Dockerfile -o docker-daemon:image:tag .
isula-build ctr-img build -f Dockerfile -o docker://registry.example.com/repository:tag .
isula-build ctr-img build -f Dockerfile -o isulad:image:tag .
isula-build ctr-img build -f Dockerfile --build-static='build-time=2020-06-30 15:05:05' .
isula-build ctr-img build --target builder -t app:build .
isula-build ctr-img build --build-context assets=../assets --build-context base=docker-image://busybox:latest .
isula-build ctr-img build --cache-to registry.example.com/app:cache,mode=max --cache-from registry.example.com/app:cache .
isula-build ctr-img build --secret id=token,src=token.txt --ssh default ."""

OUTPUT_HELP = """\
Destination of output images: docker-archive:PATH:NAME:TAG, oci-archive:PATH:NAME:TAG,
docker-daemon:NAME:TAG, isulad:NAME:TAG, docker://REGISTRY/REPO:TAG, oci://REGISTRY/REPO:TAG"""


def add_commands(subparsers: argparse._SubParsersAction, ctx: ParserContext) -> None:
    p = ctx.add(subparsers, "build", summary="Build container images",
                usage="isula-build ctr-img build [FLAGS] [CONTEXT]", example=EXAMPLE,
                handler=run_build)
    p.add_argument("context", nargs="?", default=None, metavar="CONTEXT",
                   help="Build context directory (default: the current directory)")
    p.add_argument("-f", "--filename", default="", metavar="FILE",
                   help="Path for Dockerfile (default CONTEXT/Dockerfile)")
    p.add_argument("-o", "--output", default="", metavar="SPEC", help=OUTPUT_HELP)
    p.add_argument("--proxy", action=argparse.BooleanOptionalAction, default=True,
                   help="Inherit proxy environment variables from host (default true; "
                        "--proxy=false or --no-proxy to turn off)")
    p.add_argument("--build-static", action="append", default=[], metavar="OPT",
                   help="Static build with the given option, e.g. "
                        "'build-time=2020-06-30 15:05:05'")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY[=VALUE]",
                   help="Arguments used during build time (a bare KEY takes its value from "
                        "the environment)")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                   help="Add Linux capabilities for RUN command")
    p.add_argument("--iidfile", default="", metavar="FILE", help="Write image ID to the file")
    p.add_argument("--no-cache", action="store_true",
                   help="Do not use the build cache (steps still refresh it)")
    p.add_argument("--cache-to", default="", metavar="REF[,mode=min|max]",
                   help="Export the build cache to a registry image reference (min, the "
                        "default: the steps of the final image; max: every stage's)")
    p.add_argument("--cache-from", action="append", default=[], metavar="REF",
                   help="Use the build cache exported to a registry image reference "
                        "(repeatable)")
    p.add_argument("--secret", action="append", default=[], metavar="id=ID,src=FILE|env=VAR",
                   help="A secret for RUN --mount=type=secret (repeatable; type=file|env too): "
                        "read by the client, sent encrypted, never stored in the image")
    p.add_argument("--ssh", action="append", default=[], metavar="default|ID[=SOCKET|KEY,...]",
                   help="An ssh agent for RUN --mount=type=ssh (repeatable): default forwards "
                        "$SSH_AUTH_SOCK; KEY files get an agent of the client's own")
    p.add_argument("-t", "--tag", default="", metavar="NAME[:TAG]",
                   help="Add tag to the built image")
    add_progress_flag(p)
    p.add_argument("--target", default="", metavar="STAGE",
                   help="Build and commit this stage (its name or index), with only the "
                        "stages it needs (default: the last stage)")
    p.add_argument("--build-context", action="append", default=[], metavar="NAME=VALUE",
                   help="A named context for FROM NAME and COPY --from=NAME (repeatable): "
                        "a directory, docker-image://REF or oci-layout://PATH[:TAG]")
    p.add_argument("--platform", default="", metavar="OS/ARCH[/VARIANT][,...]",
                   help="Build for these platforms (default this machine's); several give a "
                        "manifest list")
    if ctx.experimental:
        p.add_argument("--format", default="oci", choices=IMAGE_FORMATS,
                       help="Image format of the built image (default oci)")
    else:
        p.set_defaults(format="docker")
    add_compression_flag(p)


# --- pure checks, each refusing with a message that names the problem -----------------------

def parse_output(spec: str) -> str:
    """Checks an -o spec with the daemon's parser and returns it as sent to the daemon (an
    archive's path made absolute, the rest as written)."""
    if not spec:
        return ""
    # Imported here: most commands never check an output spec.
    from isula_build.transports.reference import ArchiveRef, parse_reference, replace_archive_path

    ref = parse_reference(spec)
    if not isinstance(ref, ArchiveRef):
        return spec
    target = absolute(ref.path)
    if os.path.lexists(target):
        raise InvalidArgument(f'output file already exist: "{target}", try to remove existing '
                              "tarball or rename output file")
    return replace_archive_path(spec, target)


def check_compression(text: str, output: str, image_format: str) -> None:
    """Refuses --compression for an output the daemon would refuse it for."""
    from isula_build.transports.reference import output_compression, parse_reference

    output_compression(parse_reference(output) if output else None, text, image_format)


def check_platforms(text: str) -> None:
    """Refuses a --platform the daemon would refuse, with the daemon's words."""
    from isula_build.image.platform import parse_platforms

    parse_platforms(text)


def parse_build_static(options: list[str]) -> datetime | None:
    """The fixed build time of --build-static 'build-time=YYYY-MM-DD HH:MM:SS' (UTC)."""
    build_time = None
    for option in options:
        key, sep, value = option.partition("=")
        key = key.strip()
        if not sep:
            raise InvalidArgument(f"invalid --build-static option {option!r}: use key=value, e.g. "
                                  "'build-time=2020-05-23 10:55:33'")
        if key != BUILD_TIME_KEY:
            raise InvalidArgument(
                f"option {key!r} not support by build-static, only {BUILD_TIME_KEY}")
        try:
            build_time = datetime.strptime(value.strip(), BUILD_TIME_LAYOUT)
        except ValueError:
            raise InvalidArgument(f"invalid build time {value!r}: build time format need like "
                                  "'2020-05-23 10:55:33'") from None
    return build_time.replace(tzinfo=timezone.utc) if build_time else None


def resolve_build_args(args: list[str], env: Mapping[str, str]) -> list[str]:
    """KEY=VALUE kept as given; a bare KEY takes its value from the client's environment and
    is left out when unset (the Dockerfile default then applies, as with docker build)."""
    resolved = []
    for arg in args:
        key, sep, _ = arg.partition("=")
        if not key:
            raise InvalidArgument(f"invalid build arg {arg!r}: the name is empty")
        if sep:
            resolved.append(arg)
        elif key in env:
            resolved.append(f"{key}={env[key]}")
    return resolved


def check_capabilities(caps: list[str]) -> None:
    for cap in caps:
        if cap not in CAPABILITIES:
            raise InvalidArgument(f"cap {cap} is invalid, use a name such as CAP_SYS_ADMIN")


def resolve_context(context: str | None) -> str:
    path = os.path.realpath(context if context else os.getcwd())
    if not os.path.exists(path):
        raise InvalidArgument(f"context directory {path!r} does not exist")
    if not os.path.isdir(path):
        raise InvalidArgument(f"context directory path {path!r} should be a directory")
    return path


def resolve_build_context(spec: str) -> str:
    """--build-context NAME=VALUE as sent: a directory made absolute and checked as the main
    context is (the daemon reads it where it is), an oci-layout:// path made absolute, a
    docker-image:// reference as written. The daemon checks the rest (names, references)."""
    name, sep, value = spec.partition("=")
    if not name or not sep or not value:
        raise InvalidArgument(f"invalid --build-context {spec!r}: use NAME=DIR, "
                              "NAME=docker-image://REF or NAME=oci-layout://PATH[:TAG]")
    if value.startswith(DOCKER_IMAGE_SCHEME):
        return spec
    if value.startswith(OCI_LAYOUT_SCHEME):
        path = value[len(OCI_LAYOUT_SCHEME):]
        return f"{name}={OCI_LAYOUT_SCHEME}{absolute(path) if path else path}"
    if "://" in value:
        raise InvalidArgument(f"invalid --build-context {spec!r}: unsupported scheme; use a "
                              "directory, docker-image://REF or oci-layout://PATH[:TAG]")
    path = os.path.realpath(value)
    if not os.path.isdir(path):
        raise InvalidArgument(f"--build-context {name}: directory {path!r} does not exist or "
                              "is not a directory")
    return f"{name}={path}"


def _dockerfile_problem(path: str) -> str | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MAX_DOCKERFILE_SIZE:
        return f"size {info.st_size} exceeds the limit of 1 MiB"
    return None


def find_dockerfile(context_dir: str, filename: str) -> str:
    """The Dockerfile: -f as given, else relative to the context; by default
    CONTEXT/Dockerfile, then CONTEXT/dockerfile (as the original looks it up)."""
    if filename:
        candidates = [filename]
        if not os.path.isabs(filename):
            candidates.append(os.path.join(context_dir, filename))
    else:
        candidates = [os.path.join(context_dir, "Dockerfile"), os.path.join(context_dir, "dockerfile")]
    problems = []
    for candidate in candidates:
        problem = _dockerfile_problem(candidate)
        if problem is None:
            return candidate
        problems.append(f"{candidate}: {problem}")
    raise InvalidArgument("check dockerfile failed: " + "; ".join(problems))


def read_dockerfile(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read(MAX_DOCKERFILE_SIZE + 1)
    if len(data) > MAX_DOCKERFILE_SIZE:
        raise InvalidArgument(f"dockerfile {path} exceeds the limit of 1 MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"dockerfile {path} is not UTF-8 text") from None


@dataclass(frozen=True)
class BuildInvocation:
    """Everything the request needs, checked and resolved locally."""

    context_dir: str
    dockerfile: str
    content: str
    output: str
    build_args: list[str]
    build_time: datetime | None
    iidfile: str
    tag: str
    caps: list[str]
    proxy: bool
    image_format: str
    no_cache: bool = False
    compression: str = ""
    target: str = ""
    build_contexts: list[str] = field(default_factory=list)
    platform: str = ""
    cache_to: str = ""
    cache_from: list[str] = field(default_factory=list)
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)
    agents: list[AgentSpec] = field(default_factory=list)


def check_cache_refs(cache_to: str, cache_from: list[str]) -> None:
    """Refuses a malformed --cache-to spec or --cache-from reference before the build."""
    from isula_build.distribution.cachedoc import parse_cache_to
    from isula_build.registry.names import parse_remote

    for ref in [parse_cache_to(cache_to).ref] if cache_to else []:
        parse_remote(ref)
    for ref in cache_from:
        parse_remote(ref)


def prepare_build(args: argparse.Namespace) -> BuildInvocation:
    if args.format not in IMAGE_FORMATS:
        raise InvalidArgument(f"wrong image format {args.format!r} provided, use oci or docker")
    check_capabilities(args.cap_add)
    check_cache_refs(args.cache_to, args.cache_from)
    build_time = parse_build_static(args.build_static)
    output = parse_output(args.output)
    check_compression(args.compression, output, args.format)
    check_platforms(args.platform)
    context_dir = resolve_context(args.context)
    dockerfile = find_dockerfile(context_dir, args.filename)
    return BuildInvocation(
        context_dir=context_dir,
        dockerfile=dockerfile,
        content=read_dockerfile(dockerfile),
        output=output,
        build_args=resolve_build_args(args.build_arg, os.environ),
        build_time=build_time,
        iidfile=absolute(args.iidfile) if args.iidfile else "",
        tag=args.tag,
        caps=list(args.cap_add),
        proxy=args.proxy,
        image_format=args.format,
        no_cache=args.no_cache,
        compression=args.compression,
        target=args.target,
        build_contexts=[resolve_build_context(spec) for spec in args.build_context],
        platform=args.platform,
        cache_to=args.cache_to,
        cache_from=list(args.cache_from),
        secrets=load_secrets(args.secret, os.environ),
        agents=parse_ssh_flags(args.ssh, os.environ),
    )


def _seal_build_args(build_args: list[str]) -> tuple[list[str], bool]:
    """Encrypts all args when one of them names a proxy variable (SPEC §5)."""
    if not any(arg.partition("=")[0] in PROXY_ARGS for arg in build_args):
        return build_args, False
    from isula_build.cli.crypto import encrypt, load_public_key

    key = load_public_key(public_key_path())
    return [encrypt(arg, key) for arg in build_args], True


def _sealed_secrets(plan: BuildInvocation, build_id: str) -> list[Any]:
    if not plan.secrets:
        return []
    from isula_build.cli.crypto import load_public_key
    from isula_build.cli.secrets import seal_secrets

    return seal_secrets(plan.secrets, build_id, load_public_key(public_key_path()))


# --- the exchange with the daemon ---------------------------------------------------------------

SUCCESS_LINE = "Build success with image id: {}"
IIDFILE_LINE = "Write image ID [{}] to file: {}"
FINAL_STARTS = tuple(line.partition("{")[0] for line in (SUCCESS_LINE, IIDFILE_LINE))


def run_build(args: argparse.Namespace) -> int:
    import hashlib
    import logging

    from isula_build.api import control_pb2
    from isula_build.cli.sshforward import AgentForwarder, local_agents, new_token

    plan = prepare_build(args)
    build_args, encrypted = _seal_build_args(plan.build_args)
    build_id = new_id()
    token = new_token() if plan.agents else ""
    build_static = control_pb2.BuildStatic()
    entity_time = ""
    if plan.build_time is not None:
        build_static.buildTime.FromDatetime(plan.build_time)
        entity_time = plan.build_time.isoformat()
    request = control_pb2.BuildRequest(
        buildID=build_id, buildType="ctr-img", contextDir=plan.context_dir,
        fileContent=plan.content, output=plan.output, buildArgs=build_args, proxy=plan.proxy,
        iidfile=plan.iidfile, buildStatic=build_static, additionalTag=plan.tag,
        capAddList=plan.caps,
        # What identifies "the same build" to the original daemon: the Dockerfile digest and
        # the static build time.
        entityID=f"{hashlib.sha256(plan.content.encode()).hexdigest()}:{entity_time}",
        encrypted=encrypted, format=plan.image_format, noCache=plan.no_cache,
        compression=plan.compression, target=plan.target,
        buildContexts=plan.build_contexts, platform=plan.platform,
        cacheTo=plan.cache_to, cacheFrom=plan.cache_from,
        secrets=_sealed_secrets(plan, build_id),
        ssh=control_pb2.SSHForwardSpec(ids=[a.id for a in plan.agents], token=token)
        if plan.agents else None)
    logging.debug("build %s: context %s, dockerfile %s", build_id, plan.context_dir, plan.dockerfile)

    with local_agents(plan.agents) as sockets, session(args) as conn, \
            open_output(args.progress, FINAL_STARTS) as out:
        forwarder = AgentForwarder(sockets)
        if sockets:
            forwarder.start(conn.stub, build_id, token)
        try:
            return _follow(conn, out, plan, request, build_id)
        finally:
            forwarder.stop()


def _follow(conn: Connection, out: Output, plan: BuildInvocation, request: Any,
            build_id: str) -> int:
    """Sends Build, prints its Status stream, and the final line when the stream missed it."""
    import logging

    import grpc

    from isula_build.api import control_pb2

    status = conn.stub.Status(control_pb2.StatusRequest(buildID=build_id))
    build = conn.stub.Build.future(out.ask(request))

    def stop_status_on_failure(future: grpc.Future) -> None:
        # A refused or failed build ends the log too, as the original cancels its context.
        if future.exception() is not None:
            status.cancel()

    build.add_done_callback(stop_status_on_failure)
    finals = []  # what the stream carried of the final lines (a message may hold several)
    try:
        for message in status:
            out.message(message, "content")
            if any(start in message.content for start in FINAL_STARTS):
                finals.append(message.content)
    except grpc.RpcError as exc:
        # The log is a courtesy; the Build answer below says whether the build worked.
        logging.debug("status stream of build %s ended: %s", build_id, exc.details())
    image_id = build.result().imageID

    # The daemon writes the iidfile and streams the final line, as the original daemon
    # does; the line is printed here only when the stream was cut before it came.
    final = (IIDFILE_LINE.format(image_id, plan.iidfile) if plan.iidfile
             else SUCCESS_LINE.format(image_id)) + "\n"
    if final not in "".join(finals):
        out.final(final)
    return 0
