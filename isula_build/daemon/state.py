"""What every handler may use: the settings, the store, the key pair and the running jobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from isula_build.daemon.builds import BuildRegistry
from isula_build.daemon.keys import KeyPair
from isula_build.daemon.logstream import JobRegistry
from isula_build.daemon.options import DaemonOptions
from isula_build.daemon.sshrelay import AgentRelays
from isula_build.registry.settings import RegistrySettings
from isula_build.store import Store


@dataclass
class DaemonState:
    options: DaemonOptions
    store: Store
    keys: KeyPair
    jobs: JobRegistry
    builds_running: int = 0  # Info reports this count
    builds: BuildRegistry = field(default_factory=BuildRegistry)
    ssh_relays: AgentRelays = field(default_factory=AgentRelays)   # build --ssh
    # What pulls, pushes and logins take of the options, made once.
    registry: RegistrySettings = field(init=False)

    def __post_init__(self) -> None:
        self.registry = self.options.registry_settings()
