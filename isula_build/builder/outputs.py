"""`ctr-img build -o SPEC`: parsing the spec (before anything is built) and exporting the
built image through copy_image to the transport it names.

    docker-archive:PATH[:NAME[:TAG]]   oci-archive:PATH[:NAME[:TAG]]
    docker-daemon:NAME:TAG             isulad:NAME:TAG
    docker://REGISTRY/REPO:TAG         oci://REGISTRY/REPO:TAG   (pushed, docker or OCI format)

Pushing needs the daemon (its registries.toml, auth.json and certs.d): `export` gets its settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from isula_build.distribution.push import push_image
from isula_build.errors import AlreadyExists, InvalidArgument, NotFound, Unimplemented
from isula_build.image.reference import normalize_name
from isula_build.registry.names import parse_remote
from isula_build.registry.settings import RegistrySettings
from isula_build.store import ImageRecord, Store
from isula_build.transports.copy import copy_image
from isula_build.transports.docker_archive import DockerArchiveWriter
from isula_build.transports.docker_daemon import DockerDaemonWriter
from isula_build.transports.isulad import IsuladWriter
from isula_build.transports.oci_archive import OciArchiveWriter
from isula_build.transports.store import StoreSource

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
DOCKER_DAEMON = "docker-daemon"
ISULAD = "isulad"
# The registry transports; each pushes in the image format of the same name.
REGISTRY_TRANSPORTS = ("docker", "oci")
MAX_SPEC_LENGTH = 512


@dataclass(frozen=True)
class OutputSpec:
    transport: str
    path: Path | None  # archives only
    name: str | None   # normalized "repo:tag" ("registry/repo:tag" to push); None: an
                       # archive without a name


def parse_output(spec: str) -> OutputSpec | None:
    """The parsed spec, None for ""; InvalidArgument for a malformed one. Archive paths must
    be absolute, new, in an existing directory; registry names must start with the registry."""
    if not spec:
        return None
    if len(spec) > MAX_SPEC_LENGTH:
        raise InvalidArgument(f"output should not be longer than {MAX_SPEC_LENGTH} characters")
    transport, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise InvalidArgument(f"invalid output {spec!r}: use TRANSPORT:DESTINATION, e.g. "
                              "docker-archive:/tmp/image.tar:name:tag")
    if transport in (DOCKER_ARCHIVE, OCI_ARCHIVE):
        path_text, _, reference = rest.partition(":")
        path = _archive_path(spec, path_text)
        return OutputSpec(transport, path, _name(spec, reference) if reference else None)
    if transport in (DOCKER_DAEMON, ISULAD):
        if ":" not in rest.rpartition("/")[2]:
            raise InvalidArgument(f"invalid output {spec!r}: use {transport}:NAME:TAG")
        return OutputSpec(transport, None, _name(spec, rest))
    if transport in REGISTRY_TRANSPORTS:
        if not rest.startswith("//") or len(rest) == 2:
            raise InvalidArgument(f"invalid output {spec!r}: use {transport}://REGISTRY/REPO:TAG")
        name = _name(spec, rest[2:])
        try:
            parse_remote(name)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid output {spec!r}: {exc}") from None
        return OutputSpec(transport, None, name)
    raise InvalidArgument(f"invalid output {spec!r}: unknown transport {transport!r} (use "
                          "docker-archive, oci-archive, docker-daemon, isulad, docker or oci)")


def _name(spec: str, reference: str) -> str:
    try:
        return normalize_name(reference)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid output {spec!r}: {exc}") from None


def _archive_path(spec: str, text: str) -> Path:
    if not text:
        raise InvalidArgument(f"invalid output {spec!r}: the archive path is empty")
    if not os.path.isabs(text):
        raise InvalidArgument(f"invalid output {spec!r}: the archive path must be absolute")
    path = Path(os.path.normpath(text))
    if os.path.lexists(path):
        raise AlreadyExists(f'output file already exist: "{path}", try to remove existing '
                            "tarball or rename output file")
    if not path.parent.is_dir():
        raise NotFound(f"invalid output {spec!r}: directory {path.parent} does not exist")
    return path


def export(spec: OutputSpec, store: Store, image: ImageRecord, tmp_dir: Path,
           log: Callable[[str], None], registry: RegistrySettings | None = None) -> None:
    """Copies the built image to the output (the copy lines go to `log`). Registry outputs
    need the daemon's registry settings (`registry`)."""
    if spec.transport in REGISTRY_TRANSPORTS:
        if registry is None:
            raise Unimplemented(f"output {spec.transport}:// needs the daemon's registry settings")
        assert spec.name is not None
        push_image(store, registry, image.id, spec.name, spec.transport, log)
        return
    names = [spec.name] if spec.name else []
    if spec.transport == DOCKER_ARCHIVE:
        assert spec.path is not None
        writer = DockerArchiveWriter(spec.path)
    elif spec.transport == OCI_ARCHIVE:
        assert spec.path is not None
        writer = OciArchiveWriter(spec.path)
    elif spec.transport == DOCKER_DAEMON:
        writer = DockerDaemonWriter(tmp_dir)
    elif spec.transport == ISULAD:
        writer = IsuladWriter(tmp_dir)
    else:
        raise InvalidArgument(f"unknown output transport {spec.transport!r}")
    with writer, StoreSource(store, image) as src, writer.image(names) as dst:
        copy_image(src, dst, log)
