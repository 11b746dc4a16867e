"""manifest create, annotate, inspect and push (experimental): manifest lists."""

from __future__ import annotations

import argparse

from isula_build.cli.common import ParserContext, print_stream, session, write_out
from isula_build.errors import InvalidArgument

CREATE_EXAMPLE = ("isula-build manifest create openeuler\n"
                  "isula-build manifest create openeuler localhost:5000/openeuler_x86:latest")
ANNOTATE_EXAMPLE = ("isula-build manifest annotate --os linux --arch arm64 openeuler "
                    "localhost:5000/openeuler_aarch64:latest")
INSPECT_EXAMPLE = "isula-build manifest inspect openeuler:latest"
PUSH_EXAMPLE = "isula-build manifest push openeuler:latest localhost:5000/openeuler:latest"


def add_commands(subparsers: argparse._SubParsersAction, ctx: ParserContext) -> None:
    group = ctx.add(subparsers, "manifest", summary="Manipulate manifest lists")
    group.set_defaults(run=None, help_parser=group)
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    p = ctx.add(commands, "create", summary="Create a local manifest list",
                usage="isula-build manifest create MANIFEST_LIST MANIFEST [MANIFEST...]",
                example=CREATE_EXAMPLE, handler=run_create)
    p.add_argument("manifest_list", metavar="MANIFEST_LIST")
    p.add_argument("manifests", nargs="*", metavar="MANIFEST")

    p = ctx.add(commands, "annotate", summary="Annotate a local manifest list",
                usage="isula-build manifest annotate [FLAGS] MANIFEST_LIST MANIFEST",
                example=ANNOTATE_EXAMPLE, handler=run_annotate)
    p.add_argument("manifest_list", metavar="MANIFEST_LIST")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--arch", default="", help="Set architecture")
    p.add_argument("--os", default="", help="Set operating system")
    p.add_argument("--os-features", action="append", default=[], metavar="FEATURE[,FEATURE]",
                   help="Set operating system feature (repeatable, comma-separated)")
    p.add_argument("--variant", default="", help="Set architecture variant")

    p = ctx.add(commands, "inspect", summary="Inspect a local manifest list",
                usage="isula-build manifest inspect MANIFEST_LIST", example=INSPECT_EXAMPLE,
                handler=run_inspect)
    p.add_argument("manifest_list", metavar="MANIFEST_LIST")

    p = ctx.add(commands, "push", summary="Push a local manifest list to a registry",
                usage="isula-build manifest push MANIFEST_LIST DESTINATION",
                example=PUSH_EXAMPLE, handler=run_push)
    p.add_argument("manifest_list", metavar="MANIFEST_LIST")
    p.add_argument("dest", metavar="DESTINATION")


def run_create(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    request = control_pb2.ManifestCreateRequest(manifestList=args.manifest_list,
                                                manifests=args.manifests)
    with session(args) as conn:
        reply = conn.stub.ManifestCreate(request)
    write_out(reply.imageID + "\n")
    return 0


def split_features(values: list[str]) -> list[str]:
    """--os-features a,b --os-features c -> [a, b, c] (cobra's string slice)."""
    return [feature.strip() for value in values for feature in value.split(",") if feature.strip()]


def run_annotate(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    request = control_pb2.ManifestAnnotateRequest(
        manifestList=args.manifest_list, manifest=args.manifest, arch=args.arch, os=args.os,
        osFeatures=split_features(args.os_features), variant=args.variant)
    with session(args) as conn:
        conn.stub.ManifestAnnotate(request)
    write_out("manifest annotate succeed\n")
    return 0


def indent_json(data: bytes) -> str:
    """The manifest list indented by four spaces, keys in the daemon's order."""
    import json

    try:
        return json.dumps(json.loads(data), indent=4, ensure_ascii=False)
    except ValueError:
        raise InvalidArgument("display manifest error: the daemon sent invalid JSON") from None


def run_inspect(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    with session(args) as conn:
        reply = conn.stub.ManifestInspect(
            control_pb2.ManifestInspectRequest(manifestList=args.manifest_list))
    write_out(indent_json(reply.data) + "\n")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    request = control_pb2.ManifestPushRequest(manifestList=args.manifest_list, dest=args.dest)
    with session(args) as conn:
        print_stream(conn.stub.ManifestPush(request), "result")
    return 0
