"""Clients for a registry under the registry settings: registries.toml decides whether it is
blocked or insecure, policy.json whether the image may be used, auth.json gives the credentials
and certs.d the TLS trust."""

from __future__ import annotations

from isula_build.errors import FailedPrecondition
from isula_build.registry.client import TIMEOUT, RegistryClient
from isula_build.registry.config import RegistryPolicy
from isula_build.registry.credentials import AuthFile, Credentials
from isula_build.registry.names import RemoteRef
from isula_build.registry.settings import RegistrySettings

POLICY_TRANSPORT = "docker"  # the transport name policy.json uses for registries


def open_client(settings: RegistrySettings, ref: RemoteRef, push: bool = False,
                timeout: float = TIMEOUT) -> RegistryClient:
    """A client for ref's registry; refuses blocked registries and images policy.json rejects.
    timeout: seconds without progress on a connection before a try fails."""
    policy = RegistryPolicy(settings.registries)
    policy.check_allowed(ref)
    if not settings.policy.accepts(POLICY_TRANSPORT, ref.repo_path):
        raise FailedPrecondition(f"policy.json rejects images of {ref.repo_path}")
    return RegistryClient(ref.registry, settings.config_dir, policy.is_insecure(ref.registry),
                          AuthFile(settings.config_dir).get(ref.registry), push=push,
                          timeout=timeout)


def login_check(settings: RegistrySettings, server: str, credentials: Credentials) -> None:
    """FailedPrecondition unless the registry accepts the credentials."""
    policy = RegistryPolicy(settings.registries)
    policy.check_registry(server)
    RegistryClient(server, settings.config_dir, policy.is_insecure(server),
                   credentials).check_login()
