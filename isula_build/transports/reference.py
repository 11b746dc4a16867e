"""Transport references: a `transport:destination` spec parsed once into a typed reference.

    docker-archive:PATH[:NAME[:TAG]]   -> DockerArchiveRef(path, name | None)
    oci-archive:PATH[:NAME[:TAG]]      -> OciArchiveRef(path, name | None)
    docker-daemon:NAME:TAG             -> DockerDaemonRef(name)
    isulad:NAME:TAG                    -> IsuladRef(name)
    docker://REGISTRY/REPO:TAG         -> RegistryRef(name, remote, image_format="docker")
    oci://REGISTRY/REPO:TAG            -> RegistryRef(name, remote, image_format="oci")

Names are normalized by image/reference.py. The specs users write are `build -o` outputs, so
the messages speak of "output". The parser is pure (no filesystem) and cheap to import: the
client parses -o with it before sending, the daemon again before building; each side checks an
archive's path as it must (the client makes it absolute, the daemon wants it absolute and new,
in an existing directory). `transports/writers.py` opens the writer a reference names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from isula_build.errors import InvalidArgument
from isula_build.image.compressionspec import (
    DEFAULT_COMPRESSION, LayerCompression, parse_compression, require_oci_for_zstd)
from isula_build.image.reference import normalize_name
from isula_build.registry.names import RemoteRef, parse_remote

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
DOCKER_DAEMON = "docker-daemon"
ISULAD = "isulad"
# The registry transports; each pushes in the image format of the same name.
DOCKER = "docker"
OCI = "oci"
REGISTRY_TRANSPORTS = (DOCKER, OCI)
MAX_SPEC_LENGTH = 512


@dataclass(frozen=True)
class ArchiveRef:
    """An archive file; `name` is the normalized "repo:tag" it carries, None for none."""

    transport: ClassVar[str]
    path: str  # as written: callers check and resolve it
    name: str | None = None


@dataclass(frozen=True)
class DockerArchiveRef(ArchiveRef):
    transport: ClassVar[str] = DOCKER_ARCHIVE


@dataclass(frozen=True)
class OciArchiveRef(ArchiveRef):
    transport: ClassVar[str] = OCI_ARCHIVE


@dataclass(frozen=True)
class EngineRef:
    """An image handed to a local container engine under `name` (normalized "repo:tag")."""

    transport: ClassVar[str]
    name: str


@dataclass(frozen=True)
class DockerDaemonRef(EngineRef):
    transport: ClassVar[str] = DOCKER_DAEMON


@dataclass(frozen=True)
class IsuladRef(EngineRef):
    transport: ClassVar[str] = ISULAD


@dataclass(frozen=True)
class RegistryRef:
    """An image pushed to a registry: `name` normalized ("registry/repo:tag"), `remote` its
    parts, in `image_format` ("docker" or "oci", the transport's name)."""

    name: str
    remote: RemoteRef
    image_format: str

    @property
    def transport(self) -> str:
        return self.image_format


LocalRef = ArchiveRef | EngineRef
TransportRef = LocalRef | RegistryRef

_ARCHIVES: dict[str, type[ArchiveRef]] = {DOCKER_ARCHIVE: DockerArchiveRef, OCI_ARCHIVE: OciArchiveRef}
_ENGINES: dict[str, type[EngineRef]] = {DOCKER_DAEMON: DockerDaemonRef, ISULAD: IsuladRef}
_ARCHIVE_BY_FORMAT: dict[str, type[ArchiveRef]] = {DOCKER: DockerArchiveRef, OCI: OciArchiveRef}


def parse_reference(spec: str) -> TransportRef:
    """The typed reference of spec; InvalidArgument naming what is wrong."""
    if len(spec) > MAX_SPEC_LENGTH:
        raise InvalidArgument(f"output should not be longer than {MAX_SPEC_LENGTH} characters")
    # The first three messages are the original client's words (cmd/cli/build.go checkOutput).
    transport, sep, rest = spec.partition(":")
    if not transport:
        raise InvalidArgument("transport should not be empty")
    if not sep or not rest.strip():
        raise InvalidArgument(f"invalid output {spec!r}: destination should not be empty")
    if transport in _ARCHIVES:
        path, name = _split_archive(rest)
        if not path.strip():
            raise InvalidArgument(f"invalid output {spec!r}: the archive path is empty")
        return _ARCHIVES[transport](path, _name(spec, name) if name else None)
    if transport in _ENGINES:
        if ":" not in rest.rpartition("/")[2]:
            raise InvalidArgument(f"invalid output {spec!r}: use {transport}:NAME:TAG")
        return _ENGINES[transport](_name(spec, rest))
    if transport in REGISTRY_TRANSPORTS:
        if not rest.startswith("//") or len(rest) == 2:
            raise InvalidArgument(f"invalid output {spec!r}: use {transport}://REGISTRY/REPO:TAG")
        name = _name(spec, rest[2:])
        try:
            remote = parse_remote(name)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid output {spec!r}: {exc}") from None
        return RegistryRef(name, remote, transport)
    raise InvalidArgument(f"transport {transport!r} not support, use one of docker-archive, "
                          "oci-archive, docker-daemon, isulad, docker, oci")


def output_compression(ref: TransportRef | None, text: str, image_format: str) -> LayerCompression:
    """The layer compression of a build output (BuildRequest.compression, ours): only a
    registry output compresses layers, and zstd needs an OCI image both in the manifest
    (oci://) and in the image (--format oci)."""
    if not isinstance(ref, RegistryRef):
        if text:
            raise InvalidArgument(f'compression "{text}" applies only to docker:// and oci:// '
                                  "outputs: other outputs take the layers uncompressed")
        return DEFAULT_COMPRESSION
    compression = parse_compression(text)
    require_oci_for_zstd(compression, ref.image_format, f"a {ref.transport}:// output")
    require_oci_for_zstd(compression, image_format, "the built image")
    return compression


def archive_ref(image_format: str, path: str) -> ArchiveRef:
    """The archive of an image format ("docker" or "oci") at path, carrying no name (save)."""
    return _ARCHIVE_BY_FORMAT[image_format](path)


def replace_archive_path(spec: str, path: str) -> str:
    """An archive spec with its path replaced and the rest kept as written (the client sends
    -o with the path made absolute)."""
    transport, _, rest = spec.partition(":")
    _, name = _split_archive(rest)
    return f"{transport}:{path}" + (f":{name}" if name else "")


def _split_archive(destination: str) -> tuple[str, str]:
    # A path holds no ":" (the original's rule too), so the name is everything after the first.
    path, _, name = destination.partition(":")
    return path, name


def _name(spec: str, reference: str) -> str:
    try:
        return normalize_name(reference)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid output {spec!r}: {exc}") from None
