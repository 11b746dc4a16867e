"""Which registries are searched for short names, which may be insecure, which are refused.

The daemon parses registries.toml (daemon/config.py) into a `Registries` (registry/settings.py);
this module only answers questions about it. Entries are host[:port] prefixes, optionally
with a path (`example.com/ns`), matched on component boundaries as containers/image does.
"""

from __future__ import annotations

from dataclasses import dataclass

from isula_build.errors import FailedPrecondition, InvalidArgument
from isula_build.registry.names import RemoteRef, has_registry, parse_remote, qualify
from isula_build.registry.settings import Registries


def _matches(entry: str, repo_path: str) -> bool:
    entry = entry.rstrip("/")
    return repo_path == entry or repo_path.startswith(entry + "/")


@dataclass(frozen=True)
class RegistryPolicy:
    registries: Registries

    def is_insecure(self, registry: str) -> bool:
        return any(entry.rstrip("/") == registry or _matches(entry, registry)
                   for entry in self.registries.insecure)

    def check_allowed(self, ref: RemoteRef) -> None:
        """FailedPrecondition when registries.toml blocks the image's registry or repository."""
        for entry in self.registries.block:
            if _matches(entry, ref.repo_path):
                raise FailedPrecondition(f'registry "{ref.registry}" is blocked in registries.toml '
                                         f'(registries.block has "{entry}")')

    def check_registry(self, registry: str) -> None:
        """FailedPrecondition when the whole registry is blocked (login)."""
        for entry in self.registries.block:
            if entry.rstrip("/") == registry:
                raise FailedPrecondition(f'registry "{registry}" is blocked in registries.toml')

    def candidates(self, name: str) -> list[RemoteRef]:
        """The references a user's name may mean, in the order to try them: the name itself when
        it names a registry, else the name under each registries.search entry in order."""
        if has_registry(name):
            return [parse_remote(name)]
        if not self.registries.search:
            raise InvalidArgument(f'"{name}" is a short name and registries.search in '
                                  "registries.toml is empty: use HOST[:PORT]/REPOSITORY[:TAG]")
        return [qualify(name, registry) for registry in self.registries.search]
