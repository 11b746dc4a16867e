"""Run one RUN step in a container started with the OCI runtime (runc).

``run_container`` writes an OCI bundle (config.json plus copies of the host's /etc/hosts and
/etc/resolv.conf) for a root filesystem that is already mounted (``build.mounts.OverlayMount``),
runs ``<runtime> --root <state root> run --bundle <bundle> <id>`` in the foreground, streams
the container's combined stdout and stderr line by line, and always removes the container,
its runtime state and the bundle.

The container is what docker gives a ``RUN`` (SPEC §5): every namespace but the network one
(pid, ipc, uts, mount, cgroup; ``RUN --network=none`` adds a network namespace with only lo), a fresh /proc, a tmpfs /dev with runc's default devices,
read-only /sys and /sys/fs/cgroup, docker's masked and read-only paths, docker's default
capabilities plus --cap-add in the bounding, effective and permitted sets (none inheritable or
ambient, as docker since 20.10.14: a non-root USER therefore runs with no effective
capabilities), no seccomp profile (the original isula-build sets none either).

Nothing of the container itself may end up in the committed layer.  /etc/hosts and
/etc/resolv.conf are bind-mounted over files of the image; when the image lacks one of them
(or /proc, /sys, /dev), runc creates an empty mount point in the root filesystem, that is in
the overlay's upper directory.  Like BuildKit, we note beforehand which of these paths are
missing and remove them again after the run if they are still empty stubs, so the layer
shows no change there (docker's committed images carry no /etc/hosts change either).
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import subprocess
import time
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from isula_build.builder.rootpath import resolve_in_root
from isula_build.builder.users import ResolvedUser
from isula_build.errors import Cancelled, InvalidArgument, RunError

DEFAULT_RUNTIME = "runc"
# Default state root of the runtime; the executor passes <run_root>/runc.
DEFAULT_STATE_ROOT = Path("/var/run/isula-build/runc")
# docker's default PATH, used when neither the image nor the Dockerfile set one.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The limit the original isula-build puts on the host files it copies into the bundle.
MAX_HOST_FILE_SIZE = 1024 * 1024
# Soft limit of open files in the container (docker's usual value), capped by the daemon's hard
# limit: runc sets rlimits after dropping CAP_SYS_RESOURCE, so it cannot raise them.
NOFILE_LIMIT = 1024 * 1024
# A cancelled container that runc has not ended after this long gets runc itself killed.
CANCEL_GRACE = 5.0

# Linux capability numbers (include/uapi/linux/capability.h).
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
# docker's default set (moby oci/caps/defaults.go), in its order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
# docker's defaults (moby oci/defaults.go).
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)
HOST_FILES: tuple[str, ...] = ("/etc/hosts", "/etc/resolv.conf")


@dataclass(frozen=True)
class BindMount:
    """A host path bind-mounted into the container for the RUN (not part of the layer)."""

    source: Path
    destination: str
    readonly: bool = True


@dataclass(frozen=True)
class TmpfsMount:
    """An empty tmpfs for the RUN (`RUN --mount=type=tmpfs`); `size` in bytes, None: the
    kernel's default (half the memory)."""

    destination: str
    size: int | None = None


ContainerMount = BindMount | TmpfsMount
# RUN --network: "none" gets a network namespace of its own with only loopback (runc brings
# lo up in a new one); "host" and "default" share the host's, as the original does.
NETWORK_MODES = ("default", "host", "none")


@dataclass
class RunSpec:
    """What the executor decides for one RUN: the full argv (SHELL already applied), the
    environment as ``KEY=value`` (proxy variables already added), the working directory, the
    resolved USER, --cap-add values, and the hostname (empty: keep the host's, as the original)."""

    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: ResolvedUser = field(default_factory=ResolvedUser)
    cap_add: list[str] = field(default_factory=list)
    hostname: str = ""
    mounts: list[ContainerMount] = field(default_factory=list)
    network: str = "default"


def normalize_capability(name: str) -> str:
    """``sys_admin``, ``SYS_ADMIN`` and ``CAP_SYS_ADMIN`` → ``CAP_SYS_ADMIN``; unknown names refused."""
    upper = name.strip().upper()
    cap = upper if upper.startswith("CAP_") else "CAP_" + upper
    if cap not in CAPABILITIES:
        raise InvalidArgument(f'unknown capability: "{name}"')
    return cap


def capability_set(cap_add: list[str]) -> list[str]:
    """docker's default capabilities plus ``cap_add`` (``ALL`` adds every capability)."""
    caps = list(DEFAULT_CAPABILITIES)
    for name in cap_add:
        if name.strip().upper() in ("ALL", "CAP_ALL"):
            added = list(CAPABILITIES)
        else:
            added = [normalize_capability(name)]
        caps.extend(c for c in added if c not in caps)
    return caps


def capability_mask(caps: list[str]) -> int:
    """The bitmask the kernel shows in /proc/<pid>/status for ``caps``."""
    mask = 0
    for cap in caps:
        mask |= 1 << CAPABILITIES[cap]
    return mask


def _nofile_rlimit() -> dict:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = NOFILE_LIMIT
    return {"type": "RLIMIT_NOFILE", "hard": hard, "soft": min(NOFILE_LIMIT, hard)}


def _process_env(spec: RunSpec) -> list[str]:
    env = list(spec.env)
    keys = {e.partition("=")[0] for e in env}
    # As docker: a PATH and a HOME are always there, so `RUN make` finds make and tools
    # writing dotfiles find the user's home.
    if "PATH" not in keys:
        env.append(f"PATH={DEFAULT_PATH}")
    if "HOME" not in keys:
        env.append(f"HOME={spec.user.home}")
    return env


def build_config(rootfs: Path, spec: RunSpec, bundle_dir: Path) -> dict:
    """The OCI runtime spec (config.json) for ``spec`` on ``rootfs``; host files come from ``bundle_dir``."""
    if not spec.args:
        raise InvalidArgument("RUN needs a command")
    if not spec.cwd.startswith("/"):
        raise InvalidArgument(f"working directory {spec.cwd!r} is not absolute")
    caps = capability_set(spec.cap_add)
    ro_fs = ["nosuid", "noexec", "nodev", "ro"]
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ro_fs},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*ro_fs, "relatime"]},
    ]
    for dest in HOST_FILES:
        mounts.append({"destination": dest, "type": "bind", "source": str(bundle_dir / Path(dest).name),
                       "options": ["rbind", "rprivate", "ro"]})
    for m in spec.mounts:
        if isinstance(m, TmpfsMount):
            size = [f"size={m.size}"] if m.size is not None else []
            mounts.append({"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "mode=755", *size]})  # as BuildKit
        else:
            mounts.append({"destination": m.destination, "type": "bind", "source": str(m.source),
                           "options": ["rbind", "rprivate", "ro" if m.readonly else "rw"]})
    if spec.network not in NETWORK_MODES:
        raise InvalidArgument(f"unsupported network mode {spec.network!r}")
    namespaces = ["pid", "ipc", "uts", "mount", "cgroup"]
    if spec.network == "none":
        namespaces.append("network")
    config: dict = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": spec.user.uid, "gid": spec.user.gid,
                     "additionalGids": list(spec.user.additional_gids)},
            "args": list(spec.args),
            "env": _process_env(spec),
            "cwd": spec.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [_nofile_rlimit()],
            "noNewPrivileges": False,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in namespaces],
            # Deny every device but runc's defaults (null, zero, full, random, urandom, tty, ptmx).
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    if spec.hostname:
        config["hostname"] = spec.hostname
    return config


def _copy_host_file(path: str, dest: Path) -> None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_HOST_FILE_SIZE + 1)
    except FileNotFoundError:
        data = b"127.0.0.1\tlocalhost\n::1\tlocalhost\n" if path == "/etc/hosts" else b""
    if len(data) > MAX_HOST_FILE_SIZE:
        raise RunError(f"{path} of the host is larger than {MAX_HOST_FILE_SIZE} bytes")
    dest.write_bytes(data)
    # Readable by a non-root USER in the container.
    dest.chmod(0o644)


@dataclass
class _Stubs:
    """Mount points runc is about to create in the root filesystem, and how to undo them.

    ``created`` holds every missing path, parents first.  ``parents`` holds, for each existing
    directory that gets a new entry, its names and times before the run: removing the stub
    again would leave that directory with a new mtime (and, in the overlay, copied up as
    changed), so when the command did not change its entries the times are put back.
    """

    created: list[Path] = field(default_factory=list)
    parents: dict[Path, tuple[set[str], int, int]] = field(default_factory=dict)

    @classmethod
    def plan(cls, rootfs: Path, destinations: list[str]) -> _Stubs:
        stubs = cls()
        for dest in destinations:
            parts = [p for p in dest.split("/") if p]
            for i in range(1, len(parts) + 1):
                host = resolve_in_root(rootfs, "/" + "/".join(parts[:i]))
                if os.path.lexists(host) or host in stubs.created:
                    continue
                stubs.created.append(host)
                parent = host.parent
                if parent not in stubs.parents and parent.is_dir():
                    st = os.stat(parent)
                    stubs.parents[parent] = (set(os.listdir(parent)), st.st_atime_ns, st.st_mtime_ns)
        return stubs

    def remove(self) -> None:
        """Remove the stubs, children first, that are still empty; restore untouched parents' times."""
        for path in reversed(self.created):
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                elif path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
                    path.unlink()
            except OSError:
                # Not empty any more: the command put something there, which belongs to the layer.
                continue
        for parent, (names, atime, mtime) in self.parents.items():
            try:
                if set(os.listdir(parent)) == names:
                    os.utime(parent, ns=(atime, mtime), follow_symlinks=False)
            except OSError:
                continue


class _Runtime:
    """The runtime command line for one state root."""

    def __init__(self, runtime: str, state_root: Path) -> None:
        self.runtime = runtime
        self.state_root = state_root

    def argv(self, *args: str) -> list[str]:
        return [self.runtime, "--root", str(self.state_root), *args]

    def quiet(self, *args: str) -> None:
        subprocess.run(self.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def exists(self, container_id: str) -> bool:
        # runc keeps one directory a container under its root; no need to fork `runc state`.
        return (self.state_root / container_id).exists()


def _runtime_errors(log_path: Path) -> list[str]:
    """The error messages runc wrote to its JSON log (its own failures, not the command's)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    messages = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            messages.append(str(entry.get("msg", "")))
    return messages


class _LineSplitter:
    """Cuts a byte stream into lines for ``output`` without ever failing on bad UTF-8."""

    def __init__(self, output: Callable[[str], None]) -> None:
        self.output = output
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk
        *lines, self.pending = data.split(b"\n")
        for line in lines:
            self.output(line.decode("utf-8", errors="replace"))

    def close(self) -> None:
        if self.pending:
            self.output(self.pending.decode("utf-8", errors="replace"))
            self.pending = b""


CONTAINER_PREFIX = "isula-build-"


def remove_stale_containers(runtime: str, state_root: Path) -> list[str]:
    """Kill and delete containers a previous daemon left under ``state_root``; their IDs.

    runc outlives a daemon that dies mid-RUN (nothing ties it to the daemon's life), so the daemon
    calls this at start-up, before it serves builds.
    """
    rt = _Runtime(runtime, state_root)
    if not state_root.is_dir():
        return []
    stale = sorted(d.name for d in state_root.iterdir() if d.name.startswith(CONTAINER_PREFIX))
    for container_id in stale:
        rt.quiet("kill", container_id, "KILL")
        rt.quiet("delete", "--force", container_id)
    return stale


def run_container(runtime: str, rootfs: Path, spec: RunSpec, bundle_dir: Path,
                  output: Callable[[str], None], cancel: threading.Event | None = None,
                  state_root: Path = DEFAULT_STATE_ROOT) -> None:
    """Run ``spec`` in a container on the mounted ``rootfs``; return when it exited with 0.

    ``bundle_dir`` is created (it must not exist yet, or be empty) and always removed.
    ``output`` receives each line the command writes to stdout or stderr, as it comes.
    Setting ``cancel`` kills the container; the call then raises ``Cancelled``.
    A non-zero exit raises ``RunError`` naming the command and its exit code.
    """
    config = build_config(rootfs, spec, bundle_dir)
    rt = _Runtime(runtime, state_root)
    container_id = CONTAINER_PREFIX + uuid.uuid4().hex
    stubs = _Stubs.plan(rootfs, ["/proc", "/sys", "/dev", *HOST_FILES, *(m.destination for m in spec.mounts)])
    bundle_dir.mkdir(parents=True, exist_ok=True)
    try:
        state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in HOST_FILES:
            _copy_host_file(path, bundle_dir / Path(path).name)
        (bundle_dir / "config.json").write_text(json.dumps(config))
        log_path = bundle_dir / "runtime.log"
        code = _run(rt, container_id, bundle_dir, log_path, output, cancel)
        if cancel is not None and cancel.is_set():
            raise Cancelled("build cancelled: RUN container killed")
        if code != 0:
            command = " ".join(spec.args)
            errors = _runtime_errors(log_path)
            if errors:
                # The runtime failed, not the command (e.g. executable not found): say why.
                raise RunError(f"The command '{command}' could not be run: {errors[-1]}")
            raise RunError(f"The command '{command}' returned a non-zero code: {code}")
    finally:
        try:
            if rt.exists(container_id):
                rt.quiet("delete", "--force", container_id)
        finally:
            stubs.remove()
            shutil.rmtree(bundle_dir, ignore_errors=True)


def _run(rt: _Runtime, container_id: str, bundle_dir: Path, log_path: Path,
         output: Callable[[str], None], cancel: threading.Event | None) -> int:
    """Run the container in the foreground, stream its output, kill it on cancel; its exit code.

    In the foreground runc relays the command's stdout and stderr through two pipes of its
    own, so their relative order is only approximate (as with docker).  Each stream is cut
    into lines separately, so a line is never spliced with a piece of the other stream.
    """
    try:
        proc = subprocess.Popen(
            rt.argv("--log", str(log_path), "--log-format", "json",
                    "run", "--bundle", str(bundle_dir), container_id),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            # Own session: a Ctrl-C to the daemon's process group must go through cancel, not
            # straight to runc (which would forward it to the command).
            start_new_session=True)
    except OSError as exc:
        raise RunError(f"cannot start OCI runtime {rt.runtime!r}: {exc.strerror}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): _LineSplitter(output), proc.stderr.fileno(): _LineSplitter(output)}
    # poll, not select: a busy daemon's descriptors can pass select's limit of 1024.
    poller = select.poll()
    for fd in streams:
        poller.register(fd, select.POLLIN)
    last_kill = 0.0
    cancelled_at: float | None = None
    try:
        open_fds = set(streams)
        while open_fds:
            # Wake up now and then to notice a cancel even when the command is silent.
            for fd, _ in poller.poll(50):
                chunk = os.read(fd, 65536)
                if chunk:
                    streams[fd].feed(chunk)
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    streams[fd].close()
            if cancel is not None and cancel.is_set():
                now = time.monotonic()
                cancelled_at = cancelled_at or now
                if now - last_kill > 0.2:
                    # Repeated: a kill sent while runc is still creating the container finds nothing.
                    last_kill = now
                    rt.quiet("kill", container_id, "KILL")
                if now - cancelled_at > CANCEL_GRACE and proc.poll() is None:
                    # runc itself is stuck; `delete --force` in the caller ends the container.
                    proc.kill()
        return proc.wait()
    finally:
        if proc.poll() is None:
            # Only reached when output() or the loop itself failed: never leave runc behind.
            rt.quiet("kill", container_id, "KILL")
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
