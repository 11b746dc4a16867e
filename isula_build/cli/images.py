"""ctr-img images, tag, rm, import, load and save: the local image store."""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from isula_build.cli.common import ParserContext, absolute, new_id, print_stream, session, write_out
from isula_build.cli.progress import add_progress_flag, open_output
from isula_build.errors import InvalidArgument

MAX_IMPORT_SIZE = 1024 ** 3          # 1 GiB root filesystem tarball
MAX_LOAD_SIZE = 50 * 1024 ** 3       # 50 GiB image archive
ID_SHOWN = 12
# The daemon's final lines of import and load (all that --progress=quiet shows).
IMPORT_FINAL = ("Import success with image id: ",)
LOAD_FINAL = ("Loaded image as ",)

IMAGES_EXAMPLE = "isula-build ctr-img images\nisula-build ctr-img images <image name>"
TAG_EXAMPLE = ("isula-build ctr-img tag a24bb4013296 busybox:latest\n"
               "isula-build ctr-img tag busybox:v1.0 busybox:latest")
RM_EXAMPLE = ("isula-build ctr-img rm <imageID>\nisula-build ctr-img rm --prune\n"
              "isula-build ctr-img rm --all")
IMPORT_EXAMPLE = "isula-build ctr-img import busybox.tar busybox:isula"
LOAD_EXAMPLE = ("isula-build ctr-img load -i busybox.tar\n"
                "isula-build ctr-img load -i app:latest -d /home/Images\n"
                "isula-build ctr-img load -i app:latest -d /home/Images "
                "-b /home/Images/base.tar.gz -l /home/Images/lib.tar.gz")
SAVE_EXAMPLE = ("isula-build ctr-img save busybox:latest -o busybox.tar\n"
                "isula-build ctr-img save 21c3e96ac411 -o myimage.tar\n"
                "isula-build ctr-img save busybox:latest alpine:3.9 -o all.tar\n"
                "isula-build ctr-img save app:latest -b busybox:latest -d /home/Images")


def add_commands(subparsers: argparse._SubParsersAction, ctx: ParserContext) -> None:
    p = ctx.add(subparsers, "images", summary="List locally stored images",
                usage="isula-build ctr-img images [REPOSITORY[:TAG]]", example=IMAGES_EXAMPLE,
                handler=run_images)
    p.add_argument("image", nargs="?", default="", metavar="REPOSITORY[:TAG]")

    p = ctx.add(subparsers, "tag", summary="Create a tag for source image",
                usage="isula-build ctr-img tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                example=TAG_EXAMPLE, handler=run_tag)
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]", help="Image name or ID")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]", help="New name for the image")

    p = ctx.add(subparsers, "rm", summary="Remove one or more locally stored images",
                usage="isula-build ctr-img rm IMAGE [IMAGE...] [FLAGS]", example=RM_EXAMPLE,
                handler=run_rm)
    p.add_argument("images", nargs="*", metavar="IMAGE", help="Image name, ID or ID prefix")
    p.add_argument("-a", "--all", action="store_true", help="Remove all images")
    p.add_argument("-p", "--prune", action="store_true", help="Remove all untagged images")

    p = ctx.add(subparsers, "import",
                summary="Import the base image from a tarball to the image store",
                usage="isula-build ctr-img import FILE [REPOSITORY[:TAG]]",
                example=IMPORT_EXAMPLE, handler=run_import)
    p.add_argument("file", metavar="FILE",
                   help="Root filesystem tarball (plain, gzip or xz), at most 1 GiB")
    p.add_argument("reference", nargs="?", default="", metavar="REPOSITORY[:TAG]")
    add_progress_flag(p)

    p = ctx.add(subparsers, "load", summary="Load images",
                usage="isula-build ctr-img load -i FILE | -d DIR [-b BASE] [-l LIB] -i APP "
                      "[--no-check]",
                example=LOAD_EXAMPLE, handler=run_load)
    p.add_argument("-i", "--input", default="", metavar="FILE",
                   help="Path to local tarball (or app image name when loading separated images)")
    p.add_argument("-d", "--dir", default="", metavar="DIR",
                   help="Path to separated image tarballs directory")
    p.add_argument("-b", "--base", default="", metavar="FILE",
                   help="Base image tarball path of separated images")
    p.add_argument("-l", "--lib", default="", metavar="FILE",
                   help="Library image tarball path of separated images")
    p.add_argument("--no-check", action="store_true",
                   help="Skip sha256 check sum for legacy separated images loading")
    add_progress_flag(p)

    p = ctx.add(subparsers, "save", summary="Save image to tarball",
                usage="isula-build ctr-img save IMAGE [IMAGE...] [FLAGS]", example=SAVE_EXAMPLE,
                handler=run_save)
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("-o", "--output", default="", metavar="FILE", help="Path to save the tarball")
    p.add_argument("-b", "--base", default="", metavar="IMAGE",
                   help="Base image name of separated images")
    p.add_argument("-l", "--lib", default="", metavar="IMAGE",
                   help="Lib image name of separated images")
    p.add_argument("-r", "--rename", default="", metavar="FILE",
                   help="Rename json file path of separated images")
    p.add_argument("-d", "--dest", default="", metavar="DIR",
                   help="Destination file directory to store separated images")
    add_progress_flag(p)
    if ctx.experimental:
        p.add_argument("-f", "--format", default="oci", choices=("oci", "docker"),
                       help="Format of image saving to local tarball (default oci)")
    else:
        p.set_defaults(format="docker")


# --- images ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageRow:
    """One line of `images`, as the daemon sends it (ListResponse.ImageInfo)."""

    repository: str
    tag: str
    id: str
    created: str
    size: str


HEADERS = ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")

# The original prints this (without a SIZE column) when there is nothing to list.
EMPTY_TABLE = ("-----------   ----   ---------   --------\n"
               "REPOSITORY    TAG    IMAGE ID    CREATED\n"
               "-----------   ----   ---------   --------\n")

# The original renders with gotabulate's "simple" format, left-aligned: a column is as wide as
# its longest cell plus 5, a cell is written as " text " padded to that width, columns are
# joined by two spaces, and rows are separated by an empty line.
_EXTRA_WIDTH = 5
_COLUMN_GAP = "  "


def format_images_table(rows: Sequence[ImageRow]) -> str:
    if not rows:
        return EMPTY_TABLE
    cells = [(r.repository, r.tag, r.id[:ID_SHOWN], r.created, r.size) for r in rows]
    widths = [max(len(HEADERS[i]), *(len(c[i]) for c in cells)) + _EXTRA_WIDTH
              for i in range(len(HEADERS))]
    rule = _COLUMN_GAP.join("-" * w for w in widths)

    def line(values: Sequence[str]) -> str:
        return _COLUMN_GAP.join(f" {v} ".ljust(w) for v, w in zip(values, widths))

    body = "\n\n".join(line(c) for c in cells)
    return f"{rule}\n{line(HEADERS)}\n{rule}\n{body}\n{rule}\n"


def run_images(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    with session(args) as conn:
        reply = conn.stub.List(control_pb2.ListRequest(imageName=args.image))
    rows = [ImageRow(i.repository, i.tag, i.id, i.created, i.size) for i in reply.images]
    write_out(format_images_table(rows))
    return 0


# --- tag, rm -----------------------------------------------------------------------------------

def run_tag(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    with session(args) as conn:
        conn.stub.Tag(control_pb2.TagRequest(image=args.source, tag=args.target))
    write_out(f"Tag {args.source} to image {args.target} succeed\n")
    return 0


def check_rm_args(images: list[str], remove_all: bool, prune: bool) -> None:
    if images:
        if remove_all:
            raise InvalidArgument("imageID is not allowed when using --all")
        if prune:
            raise InvalidArgument("imageID is not allowed when using --prune")
    elif not remove_all and not prune:
        raise InvalidArgument("imageID must be specified")
    elif remove_all and prune:
        raise InvalidArgument("--prune is not allowed when using --all")


def run_rm(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    check_rm_args(args.images, args.all, args.prune)
    request = control_pb2.RemoveRequest(imageID=args.images, all=args.all, prune=args.prune)
    with session(args) as conn:
        print_stream(conn.stub.Remove(request), "layerMessage", add_newline=True)
    return 0


# --- import, load --------------------------------------------------------------------------------

def check_input_file(path: str, limit: int, what: str) -> str:
    """An absolute path to a non-empty regular file of at most `limit` bytes."""
    if not path:
        raise InvalidArgument(f"{what} path should not be empty")
    target = absolute(path)
    try:
        info = os.stat(target)
    except OSError as exc:
        raise InvalidArgument(f"stat {target!r} failed: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidArgument(f"{what} {target} should be a regular file")
    if info.st_size == 0:
        raise InvalidArgument(f"{what} {target} is empty")
    if info.st_size > limit:
        raise InvalidArgument(f"file {target} size is: {info.st_size}, exceeds limit {limit}")
    return target


def run_import(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    source = check_input_file(args.file, MAX_IMPORT_SIZE, "import file")
    request = control_pb2.ImportRequest(importID=new_id(), source=source,
                                        reference=args.reference)
    with session(args) as conn, open_output(args.progress, IMPORT_FINAL) as out:
        out.follow(conn.stub.Import(out.ask(request)), "log")
    return 0


@dataclass(frozen=True)
class LoadPlan:
    path: str
    app: str = ""
    dir: str = ""
    base: str = ""
    lib: str = ""
    skip_check: bool = False

    @property
    def separated(self) -> bool:
        return bool(self.dir)


def plan_load(args: argparse.Namespace) -> LoadPlan:
    """A plain load (-i FILE) or a separated one (-d DIR [-b BASE] [-l LIB] -i APP)."""
    if not (args.dir or args.base or args.lib):
        if args.no_check:
            raise InvalidArgument("--no-check is only for separated images (with -d)")
        return LoadPlan(path=check_input_file(args.input, MAX_LOAD_SIZE, "tarball"))
    if not args.input:
        raise InvalidArgument("app image name(-i) should not be empty")
    if not args.dir:
        raise InvalidArgument("image tarball directory(-d) should not be empty")
    if args.base and args.base == args.lib:
        raise InvalidArgument("base and lib tarballs are the same")
    directory = absolute(args.dir)
    if not os.path.isdir(directory):
        raise InvalidArgument(f"image tarball directory {directory!r} is not exist")
    return LoadPlan(
        path="", app=args.input, dir=directory,
        base=check_input_file(args.base, MAX_LOAD_SIZE, "base tarball") if args.base else "",
        lib=check_input_file(args.lib, MAX_LOAD_SIZE, "lib tarball") if args.lib else "",
        skip_check=args.no_check)


def run_load(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    plan = plan_load(args)
    sep = control_pb2.SeparatorLoad(app=plan.app, dir=plan.dir, base=plan.base, lib=plan.lib,
                                    skipCheck=plan.skip_check, enabled=plan.separated)
    request = control_pb2.LoadRequest(path=plan.path, loadID=new_id(), sep=sep)
    with session(args) as conn, open_output(args.progress, LOAD_FINAL) as out:
        out.follow(conn.stub.Load(out.ask(request)), "log")
    return 0


# --- save --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SavePlan:
    images: list[str]
    path: str
    image_format: str
    base: str = ""
    lib: str = ""
    rename: str = ""
    dest: str = ""

    @property
    def separated(self) -> bool:
        return bool(self.base)


def plan_save(args: argparse.Namespace) -> SavePlan:
    if not args.images:
        raise InvalidArgument("save accepts at least one image")
    for path in (args.output, args.dest):
        if ":" in path:
            raise InvalidArgument(f"colon in path {path!r} is not supported")
    if args.base or args.lib or args.rename or args.dest:
        if args.output:
            raise InvalidArgument("conflict flags between -o and [-b -l -r -d]")
        if not args.base:
            raise InvalidArgument("base image name(-b) must be provided")
        if args.lib and args.lib == args.base:
            raise InvalidArgument("base and lib images are the same")
        dest = absolute(args.dest or "Images")
        if os.path.lexists(dest):
            raise InvalidArgument(f"dest path already exist: {dest!r}, try to remove or rename it")
        # Separated images are Docker format only.
        return SavePlan(images=list(args.images), path="", image_format="docker",
                        base=args.base, lib=args.lib,
                        rename=absolute(args.rename) if args.rename else "", dest=dest)
    if not args.output:
        raise InvalidArgument("output path(-o) should not be empty")
    if args.format not in ("oci", "docker"):
        raise InvalidArgument(f"wrong image format {args.format!r} provided, use oci or docker")
    if args.format == "oci" and len(args.images) > 1:
        raise InvalidArgument("oci image format now only supports saving single image")
    path = absolute(args.output)
    if os.path.lexists(path):
        raise InvalidArgument(f"output file already exist: {path!r}, try to remove existing "
                              "tarball or rename output file")
    return SavePlan(images=list(args.images), path=path, image_format=args.format)


def saved_names(images: Sequence[str]) -> str:
    """How the original names what it saved: the one image, or Go's [a b] for several."""
    return images[0] if len(images) == 1 else "[" + " ".join(images) + "]"


def run_save(args: argparse.Namespace) -> int:
    from isula_build.api import control_pb2

    plan = plan_save(args)
    sep = control_pb2.SeparatorSave(base=plan.base, lib=plan.lib, rename=plan.rename,
                                    dest=plan.dest, enabled=plan.separated)
    request = control_pb2.SaveRequest(saveID=new_id(), images=plan.images, path=plan.path,
                                      format=plan.image_format, sep=sep)
    with session(args) as conn, open_output(args.progress) as out:
        out.follow(conn.stub.Save(out.ask(request)), "log")
        out.final(f"Save success with image: {saved_names(plan.images)}\n")
    return 0
