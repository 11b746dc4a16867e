"""Build contexts: the main one and the named ones of `--build-context NAME=VALUE`.

Every context is checked before anything runs. A named context is what FROM NAME and
COPY --from=NAME (and a RUN mount's from=NAME: builder.py's resolver) get when NAME is no stage:

- a directory, `NAME=/abs/dir`: read where it is, as the main context (the daemon reads the
  client's path; the client sends it absolute and resolved), its own .dockerignore applying.
  COPY --from=NAME copies from it as from the main context (owner 0:0 unless --chown) and the
  step key holds the digests of the files it selects (copydigest). FROM NAME starts from its
  files, copied as `COPY . /` would into scratch (BuildKit's local source sends the files with
  their modes and owner root), as one base layer, with scratch's config.
- `docker-image://REF`: the image REF, from the store or pulled, as FROM REF; keyed by its ID.
- `oci-layout://PATH[:TAG]`: the image of an OCI layout directory, the one whose ref.name
  annotation is TAG (else the only one, or `latest`); loaded into the store as a pulled image
  is (its copy lines in the build log) and keyed by its ID.

A name is matched as FROM and COPY --from write it. A name that is also a stage's is refused:
BuildKit lets the context replace the stage, which this engine does not do.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from isula_build.dockerfile import BuildPlan, DockerignoreMatcher
from isula_build.errors import InvalidArgument, NotFound
from isula_build.image.reference import normalize_name

MAX_IGNORE_FILE = 1024 * 1024
DOCKERIGNORE = ".dockerignore"
DOCKER_IMAGE = "docker-image://"
OCI_LAYOUT = "oci-layout://"
_NAME = re.compile(r"[a-z0-9][a-z0-9._/:@-]{0,254}")


@dataclass(frozen=True)
class LocalContext:
    """A directory read as a build context."""

    path: Path
    ignore: DockerignoreMatcher | None


@dataclass(frozen=True)
class NamedContext:
    name: str
    kind: str                           # "dir", "image" or "oci-layout"
    image: str = ""                     # kind image: the reference
    layout: Path | None = None          # kind oci-layout: the directory
    tag: str = ""                       # kind oci-layout: the image's ref.name, "" for any
    local: LocalContext | None = None   # kind dir


def check_context_dir(path: Path, what: str = "context directory") -> Path:
    if not path.is_absolute():
        raise InvalidArgument(f'{what} "{path}" must be an absolute path')
    if not path.is_dir():
        raise NotFound(f"{what} {path} does not exist or is not a directory")
    return path


def read_dockerignore(context_dir: Path) -> DockerignoreMatcher | None:
    path = context_dir / DOCKERIGNORE
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IGNORE_FILE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_IGNORE_FILE:
        raise InvalidArgument(f"{DOCKERIGNORE} of {context_dir} is larger than 1 MiB")
    return DockerignoreMatcher.from_text(data.decode("utf-8", "replace"))


def local_context(path: Path, what: str = "context directory") -> LocalContext:
    directory = check_context_dir(path, what)
    return LocalContext(directory, read_dockerignore(directory))


def _layout(name: str, value: str) -> NamedContext:
    """oci-layout://PATH[:TAG]: a path that is a directory as a whole has no tag."""
    path, tag = value, ""
    if not os.path.isdir(path) and ":" in path.rsplit("/", 1)[-1]:
        path, tag = value.rsplit(":", 1)
    directory = check_context_dir(Path(path), f"--build-context {name}: OCI layout")
    return NamedContext(name, "oci-layout", layout=directory, tag=tag)


def parse_build_contexts(specs: list[str], plan: BuildPlan) -> dict[str, NamedContext]:
    """The named contexts by name, checked (names, directories, references)."""
    found: dict[str, NamedContext] = {}
    stage_names = {stage.name for stage in plan.stages if stage.name}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not value:
            raise InvalidArgument(f"invalid --build-context {spec!r}: use NAME=DIR, "
                                  f"NAME={DOCKER_IMAGE}REF or NAME={OCI_LAYOUT}PATH[:TAG]")
        if not _NAME.fullmatch(name):
            raise InvalidArgument(f"invalid --build-context name {name!r}: use lower-case "
                                  "letters, digits and . _ - / : @, as in an image name")
        if name in found:
            raise InvalidArgument(f"--build-context {name} is given twice")
        if name in stage_names:
            raise InvalidArgument(f"--build-context {name}: the Dockerfile has a stage of that "
                                  "name; replacing a stage with a named context is not supported")
        if value.startswith(DOCKER_IMAGE):
            ref = value[len(DOCKER_IMAGE):]
            try:  # a malformed name is refused now (a digest is the store's or pull's to check)
                normalize_name(ref.split("@", 1)[0])
            except InvalidArgument as exc:
                raise InvalidArgument(f"--build-context {name}: {exc}") from None
            found[name] = NamedContext(name, "image", image=ref)
        elif value.startswith(OCI_LAYOUT):
            found[name] = _layout(name, value[len(OCI_LAYOUT):])
        elif "://" in value:
            raise InvalidArgument(f"--build-context {name}: unsupported source {value!r} (use "
                                  f"a directory, {DOCKER_IMAGE}REF or {OCI_LAYOUT}PATH[:TAG])")
        else:
            found[name] = NamedContext(name, "dir", local=local_context(
                Path(value), f"--build-context {name}: directory"))
    return found


__all__ = ["DOCKERIGNORE", "LocalContext", "NamedContext", "check_context_dir", "local_context",
           "parse_build_contexts", "read_dockerignore"]
