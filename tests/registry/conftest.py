"""Fixtures of the registry tests: real registries on 127.0.0.1 and a daemon state (Store on
tmp_path, parsed registries settings) for calling handlers and operations directly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from isula_build.daemon.keys import KeyPair
from isula_build.daemon.logstream import JobRegistry
from isula_build.daemon.options import DaemonOptions
from isula_build.daemon.state import DaemonState
from isula_build.registry.settings import Registries, SignaturePolicy
from isula_build.store import Store
from isula_build.transports.copy import copy_image
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination
from tests.registry.servers import Registry, TokenServer, free_port

_KEYS = KeyPair()  # RSA key generation is slow; one pair serves every test


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator:
    made: list[Registry] = []
    tokens: list[TokenServer] = []

    def factory(name: str = "registry", **kwargs) -> Registry:
        reg = Registry(tmp_path / name, free_port(), **kwargs)
        reg.start()
        made.append(reg)
        if reg.token:
            tokens.append(reg.token)
        return reg

    yield factory
    for reg in made:
        reg.stop()
    for token in tokens:
        token.stop()


@pytest.fixture
def plain_registry(registry_factory) -> Registry:
    return registry_factory("plain")


@dataclass
class StateMaker:
    root: Path
    states: list[DaemonState]

    def __call__(self, name: str = "daemon", insecure: tuple[str, ...] = (),
                 search: tuple[str, ...] = (), block: tuple[str, ...] = (),
                 experimental: bool = True) -> DaemonState:
        root = self.root / name
        (root / "etc").mkdir(parents=True, exist_ok=True)
        options = DaemonOptions(
            socket_path=root / "sock", config_dir=root / "etc", data_root=root / "data",
            run_root=root / "run", group="root", gid=0, debug=False, log_level="info",
            runtime="runc", experimental=experimental, storage_driver="overlay",
            mount_options="nodev",
            registries=Registries(search=search, insecure=insecure, block=block),
            policy=SignaturePolicy())
        state = DaemonState(options=options, store=Store(options.data_root), keys=_KEYS,
                            jobs=JobRegistry())
        self.states.append(state)
        return state


@pytest.fixture
def make_state(tmp_path: Path) -> Iterator[StateMaker]:
    maker = StateMaker(tmp_path, [])
    yield maker
    for state in maker.states:
        state.store.close()


def import_busybox(state: DaemonState, tar: Path, name: str) -> str:
    with ImportSource(tar) as src, StoreDestination(state.store, [name]) as dst:
        return copy_image(src, dst, lambda line: None)


@pytest.fixture
def big_layer_tar(tmp_path: Path) -> Path:
    """A rootfs tarball with 8 MiB of random data (several gzip blocks, incompressible)."""
    import tarfile

    path = tmp_path / "big.tar"
    data = tmp_path / "blob.bin"
    data.write_bytes(os.urandom(8 << 20))
    with tarfile.open(path, "w") as tar:
        tar.add(data, arcname="blob.bin")
    data.unlink()
    return path
