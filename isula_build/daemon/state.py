"""What every handler may use: the settings, the store, the key pair and the running jobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from isula_build.daemon.handlers.build import BuildRegistry
from isula_build.daemon.keys import KeyPair
from isula_build.daemon.logstream import JobRegistry
from isula_build.daemon.options import DaemonOptions
from isula_build.store import Store


@dataclass
class DaemonState:
    options: DaemonOptions
    store: Store
    keys: KeyPair
    jobs: JobRegistry
    builds_running: int = 0  # Info reports this count
    builds: BuildRegistry = field(default_factory=BuildRegistry)
