"""Registry references: `host[:port]/repository:tag` split into the parts a registry needs.

The grammar (what a name is, which component is the host) is image/reference.py's."""

from __future__ import annotations

from dataclasses import dataclass

from isula_build.errors import InvalidArgument
from isula_build.image.reference import normalize_name, split_domain, split_name

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class RemoteRef:
    """An image in a registry: `registry` is host[:port] as named, `repository` the path on it."""

    registry: str
    repository: str
    tag: str

    @property
    def name(self) -> str:
        """The full name the image carries in the store: registry/repository:tag."""
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def repo_path(self) -> str:
        """registry/repository (the scope policy.json and cross-repository mounts use)."""
        return f"{self.registry}/{self.repository}"


def has_registry(name: str) -> bool:
    """True when the first component of name is a registry host (docker's rule)."""
    return split_domain(name)[0] is not None


def parse_remote(name: str) -> RemoteRef:
    """A fully qualified name; InvalidArgument for a short name or a malformed one."""
    repository, tag = split_name(name)
    registry, path = split_domain(repository)
    if registry is None:
        raise InvalidArgument(f'"{name}" does not name a registry '
                              "(want HOST[:PORT]/REPOSITORY[:TAG])")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return RemoteRef(registry, path, tag)


def qualify(name: str, registry: str) -> RemoteRef:
    """A short name placed under one registry of the search list."""
    return parse_remote(f"{registry.rstrip('/')}/{normalize_name(name)}")
