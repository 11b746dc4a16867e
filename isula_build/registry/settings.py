"""The registry settings every pull, push and login takes, as containers/image's SystemContext.

The daemon reads them from its configuration directory (daemon/config.py parses registries.toml
and policy.json into the types below) and builds one `RegistrySettings` at start-up; the
registry client, the registry transport and the pull/push code take that plain object, never
the daemon's own state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Registries:
    """registries.toml (containers-registries.conf v1): registry host[:port] prefixes."""

    search: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    block: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyRequirement:
    type: str


@dataclass(frozen=True)
class SignaturePolicy:
    """policy.json: which images may be pulled and pushed (signature checks are not supported)."""

    default: tuple[PolicyRequirement, ...] = (PolicyRequirement("insecureAcceptAnything"),)
    # transport name -> scope ("" for the whole transport) -> requirements
    transports: dict[str, dict[str, tuple[PolicyRequirement, ...]]] = field(default_factory=dict)

    def accepts(self, transport: str, scope: str) -> bool:
        """Whether an image of `scope` (e.g. "registry.example.com/ns/app") is accepted.

        As in containers/image, the most specific scope of the transport wins, then the
        transport's "" scope, then the default; every requirement must accept.
        """
        requirements = self.default
        scopes = self.transports.get(transport, {})
        best = -1
        for candidate, reqs in scopes.items():
            matches = candidate == "" or scope == candidate or scope.startswith(candidate + "/")
            if matches and len(candidate) > best:
                best, requirements = len(candidate), reqs
        return all(r.type == "insecureAcceptAnything" for r in requirements)


@dataclass(frozen=True)
class RegistrySettings:
    config_dir: Path  # certs.d/ (TLS) and auth.json (credentials) live here
    data_root: Path  # the blob-info cache lives under it (registry/blobinfo.py)
    registries: Registries = Registries()
    policy: SignaturePolicy = SignaturePolicy()
