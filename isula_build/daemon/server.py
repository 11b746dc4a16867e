"""Runs isula-builder: roots, run-root lock, store, key pair, the gRPC server, and shutdown.

Start-up order matters: the run root must exist before its lock is taken, and the lock is held
before the store (whose own lock guards the data root) and before the socket is touched, so a
second daemon on the same run root fails without disturbing the first one.

SIGTERM/SIGINT: the server stops accepting requests, running requests get GRACE_SECONDS to end,
then they are cancelled (their jobs see the cancel event), the store is closed, the socket
removed, and the lock released.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc

from isula_build.api import control_pb2_grpc
from isula_build.builder.workdir import sweep_stale_builds
from isula_build.builder.builder import PRIVATE_DIR
from isula_build.builder.runtime import remove_stale_containers
from isula_build.builder.secretmounts import sweep_stale_private
from isula_build.daemon.fsinfo import TMPFS_MAGIC, fs_magic
from isula_build.daemon.handlers.cache import daemon_cache
from isula_build.daemon.keys import KeyPair
from isula_build.daemon.logstream import JobRegistry
from isula_build.daemon.options import DaemonOptions
from isula_build.daemon.runlock import RunRootLock
from isula_build.daemon.service import ControlServicer
from isula_build.daemon.state import DaemonState
from isula_build.daemon.systemd import notify
from isula_build.errors import ConfigError, FailedPrecondition
from isula_build.store import Store, inflight

_log = logging.getLogger(__name__)

ROOT_MODE = 0o700
SOCKET_MODE = 0o660
GRACE_SECONDS = 5.0  # running requests may finish within this after SIGTERM
JOIN_SECONDS = 10.0  # cancelled jobs get this long to wind down before the store closes
# Streaming requests hold a worker thread each for their whole duration (a build holds two:
# Build and Status), so the pool is sized for the original's 100 concurrent builds plus slack.
MAX_WORKERS = 256


def run(options: DaemonOptions) -> None:
    # Whatever umask the daemon was started with, what it creates is never group/world-writable.
    os.umask(0o022)
    prepare_roots(options)
    lock = RunRootLock(options.run_root)
    try:
        store = Store(options.data_root, options.space_reserve())
        try:
            _serve(options, store)
        finally:
            store.close()
    finally:
        lock.release()


def prepare_roots(options: DaemonOptions) -> None:
    _refuse_tmpfs(options.data_root)
    for root in (options.data_root, options.run_root):
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root} exists and is not a directory")
        root.mkdir(mode=ROOT_MODE, parents=True, exist_ok=True)


def _refuse_tmpfs(data_root: Path) -> None:
    # The nearest existing ancestor tells where the data root lives (or will live) before
    # anything is created.
    probe = data_root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if fs_magic(probe) == TMPFS_MAGIC:
        raise ConfigError(f"data root {data_root} is on tmpfs, where images would not survive a "
                          "reboot; choose a data root on a persistent file system (--dataroot or "
                          "data_root in configuration.toml)")


def _serve(options: DaemonOptions, store: Store) -> None:
    # Temporaries a killed daemon left beside its outputs are recorded under the data root;
    # from here on, those of this one are (the key file below is the first).
    inflight.start(options.data_root / inflight.DIRECTORY)
    keys = KeyPair()
    key_path = keys.write_public_key(options.config_dir)
    _log.debug("public key written to %s", key_path)
    state = DaemonState(options=options, store=store, keys=keys, jobs=JobRegistry())
    # A daemon killed mid-build leaves its runc containers running and its mounts in place.
    remove_stale_containers(options.runtime, options.run_root / "runc")
    sweep_stale_private(options.run_root / PRIVATE_DIR)   # RUN secrets' tmpfs
    sweep_stale_builds(options.data_root)
    # Opened now, not at the first build: what a killed daemon left half-written in the
    # build cache goes before anyone can list it.
    daemon_cache(options)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS,
                                                    thread_name_prefix="grpc"))
    control_pb2_grpc.add_ControlServicer_to_server(ControlServicer(state), server)
    path = options.socket_path
    _bind(server, path, options.gid)
    try:
        server.start()
        print(f"isula-builder is listening on {path}", flush=True)
        notify("READY=1")
        # A timed wait keeps the main thread responsive to signals.
        while not stop.wait(1.0):
            pass
        _log.info("signal received, shutting down")
        notify("STOPPING=1")
        server.stop(GRACE_SECONDS).wait()
        state.jobs.cancel_all()
        if not state.jobs.join(JOIN_SECONDS):
            _log.warning("%d request(s) did not end after cancellation", state.jobs.running())
    finally:
        server.stop(None)
        _remove_socket(path)


def _bind(server: grpc.Server, path: Path, gid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if _socket_is_live(path):
            raise FailedPrecondition(f"another isula-builder is listening on {path}")
        # A socket left by a daemon that was killed.
        path.unlink()
    # Bind with a tight umask so the socket is never reachable before its mode and group are set.
    old_umask = os.umask(0o177)
    try:
        server.add_insecure_port(f"unix:{path}")
    except RuntimeError as exc:
        raise FailedPrecondition(f"cannot listen on {path}: {exc}") from exc
    finally:
        os.umask(old_umask)
    os.chown(path, -1, gid)
    os.chmod(path, SOCKET_MODE)


def _socket_is_live(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _remove_socket(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        print(f"isula-builder: cannot remove socket {path}: {exc}", file=sys.stderr)
