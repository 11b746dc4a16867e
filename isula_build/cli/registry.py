"""Registries: ctr-img pull and push, login and logout."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from isula_build.cli.common import (
    ParserContext, add_compression_flag, new_id, public_key_path, session, write_out)
from isula_build.cli.progress import add_progress_flag, open_output
from isula_build.errors import InvalidArgument

MAX_SERVER_LENGTH = 255
MAX_CREDENTIAL_LENGTH = 128

PULL_EXAMPLE = "isula-build ctr-img pull registry.example.com/repository:tag"
PUSH_EXAMPLE = "isula-build ctr-img push registry.example.com/repository:tag"
LOGIN_EXAMPLE = ("isula-build login mydockerhub.io -u cooper\n"
                 "cat creds.txt | isula-build login -u cooper -p mydockerhub.io")
LOGOUT_EXAMPLE = "isula-build logout mydockerhub.io\nisula-build logout -a"


def add_image_commands(subparsers: argparse._SubParsersAction, ctx: ParserContext) -> None:
    p = ctx.add(subparsers, "pull", summary="Pull image from remote repository",
                usage="isula-build ctr-img pull [FLAGS] REPOSITORY[:TAG]", example=PULL_EXAMPLE,
                handler=run_pull)
    p.add_argument("image", metavar="REPOSITORY[:TAG]")
    add_progress_flag(p)
    p.add_argument("--platform", default="", metavar="OS/ARCH[/VARIANT]",
                   help="Pull the image of this platform from a manifest list (default this "
                        "machine's)")

    p = ctx.add(subparsers, "push", summary="Push image to remote repository",
                usage="isula-build ctr-img push REPOSITORY[:TAG] [FLAGS]", example=PUSH_EXAMPLE,
                handler=run_push)
    p.add_argument("image", metavar="REPOSITORY[:TAG]")
    add_progress_flag(p)
    if ctx.experimental:
        p.add_argument("-f", "--format", default="oci", choices=("oci", "docker"),
                       help="Format for image pushing to a remote registry (default oci)")
    else:
        p.set_defaults(format="docker")
    add_compression_flag(p)


def add_login_commands(subparsers: argparse._SubParsersAction, ctx: ParserContext) -> None:
    p = ctx.add(subparsers, "login", summary="Login to an image registry",
                usage="isula-build login SERVER [FLAGS]", example=LOGIN_EXAMPLE,
                handler=run_login)
    p.add_argument("server", metavar="SERVER")
    p.add_argument("-u", "--username", default=None, metavar="USER",
                   help="Username to access registry")
    p.add_argument("-p", "--password-stdin", action="store_true",
                   help="Read password from stdin")

    p = ctx.add(subparsers, "logout", summary="Logout from an image registry",
                usage="isula-build logout [SERVER] [FLAGS]", example=LOGOUT_EXAMPLE,
                handler=run_logout)
    p.add_argument("server", nargs="?", default="", metavar="SERVER")
    p.add_argument("-a", "--all", action="store_true", help="Logout all registries")


def _check_image_name(name: str) -> None:
    """Refuses, before connecting, a name the daemon would refuse (the one name grammar)."""
    # Imported here: most commands never check an image name.
    from isula_build.image.reference import normalize_name

    normalize_name(name)


def _check_compression(text: str, image_format: str) -> None:
    """Refuses, before connecting, a --compression the daemon would refuse."""
    from isula_build.image.compressionspec import parse_compression, require_oci_for_zstd

    require_oci_for_zstd(parse_compression(text), image_format, "the push")


def run_pull(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    _check_image_name(args.image)
    if args.platform:
        from isula_build.image.platform import Platform

        Platform.parse(args.platform)
    request = control_pb2.PullRequest(pullID=new_id(), imageName=args.image,
                                      platform=args.platform)
    with session(args) as conn, open_output(args.progress) as out:
        out.follow(conn.stub.Pull(out.ask(request)), "response")
        out.final(f"Pull success with image: {args.image}\n")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    _check_image_name(args.image)
    _check_compression(args.compression, args.format)
    request = control_pb2.PushRequest(pushID=new_id(), imageName=args.image, format=args.format,
                                      compression=args.compression)
    with session(args) as conn, open_output(args.progress) as out:
        out.follow(conn.stub.Push(out.ask(request)), "response")
        out.final(f"Push success with image: {args.image}\n")
    return 0


def parse_server(server: str) -> str:
    """The registry host of SERVER: scheme and path dropped, as the original does
    (https://index.docker.io/v1 -> index.docker.io)."""
    if len(server) > MAX_SERVER_LENGTH:
        raise InvalidArgument("max length of server name exceeded")
    for prefix in ("https://", "http://", "docker://"):
        server = server.removeprefix(prefix)
    host = server.split("/", 1)[0]
    if not host or host in (".", ".."):
        raise InvalidArgument(f"invalid registry address {server!r}")
    return host


def read_password_stdin(stream: TextIO) -> str:
    """All of stdin with the line breaks removed (a trailing newline is not part of it)."""
    password = "".join(stream.read().splitlines())
    if not password:
        raise InvalidArgument("auth info can not be empty")
    if len(password) > MAX_CREDENTIAL_LENGTH:
        raise InvalidArgument("length of input exceeded")
    return password


def prompt_password() -> str:
    import getpass

    try:
        password = getpass.getpass("Password: ")
    except EOFError:
        raise InvalidArgument("could not read password from terminal") from None
    if len(password) > MAX_CREDENTIAL_LENGTH:
        raise InvalidArgument("length of input exceeded")
    return password


def read_username(flag: str | None, password_stdin: bool) -> str:
    if flag is None:
        if password_stdin:
            raise InvalidArgument("must provides --password-stdin with --username")
        try:
            flag = input("Username: ")
        except EOFError:
            raise InvalidArgument("could not read username from terminal") from None
    username = flag.strip()
    if not username:
        raise InvalidArgument("username can not be empty")
    if len(username) > MAX_CREDENTIAL_LENGTH:
        raise InvalidArgument("length of input exceeded")
    return username


def run_login(args: argparse.Namespace) -> int:
    import grpc

    from isula_build.api import control_pb2
    from isula_build.cli.crypto import encrypt, load_public_key

    server = parse_server(args.server)
    username = read_username(args.username, args.password_stdin)
    with session(args) as conn:
        # The key is read once the daemon answers: it writes a fresh one at every start.
        key = load_public_key(public_key_path())
        password = read_password_stdin(sys.stdin) if args.password_stdin else prompt_password()
        request = control_pb2.LoginRequest(server=server, username=username,
                                           password=encrypt(password, key))
        try:
            reply = conn.stub.Login(request)
        except grpc.RpcError:
            write_out("\nLogin Failed\n")
            raise
    write_out(reply.content + "\n")
    return 0


def run_logout(args: argparse.Namespace) -> int:
    import grpc

    from isula_build.api import control_pb2

    if args.all:
        if args.server:
            raise InvalidArgument("a server is not allowed when using --all")
        server = ""
    elif not args.server:
        raise InvalidArgument("empty registry found, please input one registry")
    else:
        server = parse_server(args.server)
    with session(args) as conn:
        try:
            reply = conn.stub.Logout(control_pb2.LogoutRequest(server=server, all=args.all))
        except grpc.RpcError:
            write_out("\nLogout Failed\n")
            raise
    write_out(reply.result + "\n")
    return 0
