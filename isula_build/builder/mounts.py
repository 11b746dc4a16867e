"""The overlayfs mount of a build stage's root filesystem.

``OverlayMount`` stacks the image's extracted layers (``Store.layer_dir``) as read-only lower
directories under a fresh upper directory; every change a RUN makes lands in the upper
directory, which the commit turns into the stage's new layer.

Mounting uses the mount(2) system call through ctypes rather than the ``mount`` command: a RUN
step is on the build's hot path and a fork+exec of mount(8) costs milliseconds where the call
costs microseconds; errno also gives an exact reason instead of mount(8)'s text.

The one limit of mount(2) is its option string: the kernel copies at most one page (4096 bytes).
Absolute layer paths are ~100 bytes each, so about 40 layers fit.  Beyond that the mount is
made with short relative names: a private directory of symlinks ``0``, ``1``, … to the layers,
and the ``mount`` command run with that directory as its working directory (the kernel resolves
relative lowerdir paths against the caller's cwd, and changing the cwd of the multi-threaded
daemon itself is not an option).  The links are removed as soon as the mount exists: overlayfs
holds the resolved directories, not the names.  That raises the limit to overlayfs' own (500
lower layers).

``BindMountPoint`` binds an open descriptor (a RUN --mount source) onto a staging point, so
what runc mounts is what was checked; ``PrivateTmpfs`` is a RUN's own tmpfs for its secrets. ``mount_points`` (the one reader of /proc/self/mountinfo)
and ``detach`` serve the clean-up of
work dirs a build or a dead daemon left mounted.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from isula_build.errors import InternalError, InvalidArgument, ResourceExhausted

# overlayfs refuses more lower layers than this (fs/overlayfs: OVL_MAX_STACK).
MAX_LOWER_DIRS = 500
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_MS_FLAGS = {
    "ro": 0x1, "nosuid": 0x2, "nodev": 0x4, "noexec": 0x8, "sync": 0x10,
    "noatime": 0x400, "nodiratime": 0x800, "relatime": 0x200000, "strictatime": 0x1000000,
}
_MS_CLEAR = {"rw": 0x1, "suid": 0x2, "dev": 0x4, "exec": 0x8}
_MNT_DETACH = 0x2
_MS_BIND = 0x1000
# Unmounting a busy overlay is retried this many times (10 ms apart) before detaching it lazily.
_UMOUNT_RETRIES = 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount_points() -> list[str]:
    """The mount points of this mount namespace, in /proc/self/mountinfo's order (field 5,
    where the kernel writes space, tab, newline and backslash as octal escapes: \\040 …)."""
    with open("/proc/self/mountinfo") as f:
        return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
                for line in f]


def detach(target: Path) -> None:
    """Detaches the mount at target lazily (MNT_DETACH): the kernel frees it once its last
    user goes. Best effort: a target that is no mount point is left as it is."""
    _libc.umount2(os.fsencode(target), _MNT_DETACH)


def split_mount_options(mountopt: str) -> tuple[int, list[str]]:
    """Split ``nodev,metacopy=on`` into mount(2) flags and filesystem data options."""
    flags = 0
    data: list[str] = []
    for opt in (o.strip() for o in mountopt.split(",")):
        if not opt:
            continue
        if opt in _MS_FLAGS:
            flags |= _MS_FLAGS[opt]
        elif opt in _MS_CLEAR:
            flags &= ~_MS_CLEAR[opt]
        elif opt.split("=", 1)[0] in ("lowerdir", "upperdir", "workdir"):
            raise InvalidArgument(f"overlay mount option {opt!r} is set by isula-builder, "
                                  "not by configuration")
        else:
            data.append(opt)
    return flags, data


def _short_name(i: int) -> str:
    """0, 1, …, z, 10, 11, … : base 36 keeps 500 names within three characters."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, r = divmod(i, 36)
        out = digits[r] + out
        if i == 0:
            return out


class OverlayMount:
    """An overlayfs mount of ``lower_dirs`` (TOP FIRST, as overlayfs' lowerdir lists them:
    ``lower_dirs[0]`` hides everything below it; a caller holding the image's layers bottom
    first passes ``list(reversed(layers))``) under ``upper`` at ``target``.

    ``upper``, ``work`` and ``target`` are created if missing; ``upper`` and ``work`` must be
    on the same filesystem.  They stay after unmount: the caller commits ``upper`` and removes
    the three.  An empty ``lower_dirs`` (FROM scratch) gets an empty lower directory of its own,
    made next to ``work`` and removed at unmount.

    Use as a context manager (``with OverlayMount(...) as m:``) or call mount()/unmount();
    unmount() is idempotent and leaves nothing mounted, even when something still holds the
    mount busy (it is then detached lazily).
    """

    def __init__(self, lower_dirs: list[Path], upper: Path, work: Path, target: Path,
                 mountopt: str = "nodev") -> None:
        if len(lower_dirs) > MAX_LOWER_DIRS:
            raise ResourceExhausted(f"an image of {len(lower_dirs)} layers has more than the "
                                    f"{MAX_LOWER_DIRS} overlayfs can stack")
        self.lower_dirs = [Path(p).absolute() for p in lower_dirs]
        self.upper = Path(upper).absolute()
        self.work = Path(work).absolute()
        self.target = Path(target).absolute()
        self.flags, self.data = split_mount_options(mountopt)
        self.mounted = False
        self._empty_lower: Path | None = None

    def __enter__(self) -> OverlayMount:
        self.mount()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.unmount()

    def mount(self) -> None:
        if self.mounted:
            return
        for d in (self.upper, self.work, self.target):
            d.mkdir(parents=True, exist_ok=True)
        lowers = self.lower_dirs
        if not lowers:
            self._empty_lower = Path(tempfile.mkdtemp(prefix=".scratch-lower-", dir=self.work.parent))
            lowers = [self._empty_lower]
        try:
            options = self._options([str(p) for p in lowers])
            if len(options.encode()) < PAGE_SIZE:
                self._mount_syscall(options)
            else:
                self._mount_with_short_names(lowers)
        except BaseException:
            self._remove_empty_lower()
            raise
        self.mounted = True

    def _options(self, lowers: list[str]) -> str:
        for p in lowers:
            # ':' and ',' separate overlay options; such a path would be misread, not mounted.
            if ":" in p or "," in p:
                raise InvalidArgument(f"overlay lower directory {p!r} contains ':' or ','")
        return ",".join([f"lowerdir={':'.join(lowers)}", f"upperdir={self.upper}",
                         f"workdir={self.work}", *self.data])

    def _mount_syscall(self, options: str) -> None:
        rc = _libc.mount(b"overlay", os.fsencode(self.target), b"overlay", self.flags, options.encode())
        if rc != 0:
            err = ctypes.get_errno()
            raise InternalError(f"mounting overlay at {self.target} failed: {os.strerror(err)} "
                                f"(options {options!r})")

    def _mount_with_short_names(self, lowers: list[Path]) -> None:
        links = Path(tempfile.mkdtemp(prefix=".lowers-", dir=self.work.parent))
        try:
            names = []
            for i, p in enumerate(lowers):
                name = _short_name(i)
                os.symlink(p, links / name)
                names.append(name)
            options = self._options(names)
            if len(options.encode()) >= PAGE_SIZE:
                raise ResourceExhausted(f"overlay mount options for {len(lowers)} layers exceed "
                                        f"the kernel's {PAGE_SIZE}-byte limit")
            flag_words = [w for w, bit in _MS_FLAGS.items() if self.flags & bit]
            # -n: never write /etc/mtab; -i: no mount helpers, the kernel's overlay only.
            proc = subprocess.run(
                ["mount", "-n", "-i", "-t", "overlay", "overlay", "-o", ",".join([*flag_words, options]),
                 str(self.target)],
                cwd=links, capture_output=True, text=True)
            if proc.returncode != 0:
                raise InternalError(f"mounting overlay at {self.target} failed: {proc.stderr.strip()}")
        finally:
            shutil.rmtree(links, ignore_errors=True)

    def unmount(self) -> None:
        if self.mounted:
            self._umount()
            self.mounted = False
        self._remove_empty_lower()

    def _umount(self) -> None:
        _unmount(self.target)

    def _remove_empty_lower(self) -> None:
        if self._empty_lower is not None:
            shutil.rmtree(self._empty_lower, ignore_errors=True)
            self._empty_lower = None


def _unmount(path: Path) -> None:
    """Unmounts `path`, retrying while busy, then detaching lazily; not mounted is fine."""
    target = os.fsencode(path)
    for _ in range(_UMOUNT_RETRIES):
        if _libc.umount2(target, 0) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EINVAL:  # not (or no longer) a mount point
            return
        if err != errno.EBUSY:
            raise InternalError(f"unmounting {path} failed: {os.strerror(err)}")
        time.sleep(0.01)
    # Still busy (a straggling process has its cwd inside): detach now, the kernel frees
    # it when the last user goes, and the build can go on.
    if _libc.umount2(target, _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL:
            raise InternalError(f"detaching {path} failed: {os.strerror(err)}")


class BindMountPoint:
    """A bind mount of the file or directory open as `fd` (O_PATH is enough) at `target`,
    which is made (an empty file or directory to match). Binding the descriptor, not a path,
    mounts exactly what was opened and checked, whatever is renamed meanwhile (RUN --mount
    sources in the build context). Unmounted and `target` removed by unmount()."""

    def __init__(self, fd: int, target: Path) -> None:
        self.fd = fd
        self.target = target
        self.mounted = False

    def __enter__(self) -> BindMountPoint:
        if os.path.isdir(f"/proc/self/fd/{self.fd}"):
            self.target.mkdir()
        else:
            self.target.touch(0o600, exist_ok=False)
        rc = _libc.mount(os.fsencode(f"/proc/self/fd/{self.fd}"), os.fsencode(self.target), None,
                         _MS_BIND, None)
        if rc != 0:
            err = ctypes.get_errno()
            self._remove()
            raise InternalError(f"bind-mounting a RUN --mount source at {self.target} failed: "
                                f"{os.strerror(err)}")
        self.mounted = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.mounted:
            _unmount(self.target)
            self.mounted = False
        self._remove()

    def _remove(self) -> None:
        try:
            if self.target.is_dir():
                self.target.rmdir()
            else:
                self.target.unlink()
        except OSError:
            pass  # the work dir's removal takes what is left


class PrivateTmpfs:
    """A fresh tmpfs of at most `size` bytes at `target` (made, mode 0700), for what must never
    reach a disk (RUN secrets, the bundle that names them). nosuid, nodev, noexec. unmount()
    (or the block's end) unmounts it — its contents go with it — and removes `target`."""

    def __init__(self, target: Path, size: int) -> None:
        self.target = target
        self.size = size
        self.mounted = False

    def __enter__(self) -> PrivateTmpfs:
        self.target.mkdir(mode=0o700)
        flags = _MS_FLAGS["nosuid"] | _MS_FLAGS["nodev"] | _MS_FLAGS["noexec"]
        options = f"mode=0700,size={self.size}".encode()
        if _libc.mount(b"tmpfs", os.fsencode(self.target), b"tmpfs", flags, options) != 0:
            err = ctypes.get_errno()
            self.target.rmdir()
            raise InternalError(f"mounting a tmpfs at {self.target} failed: {os.strerror(err)}")
        self.mounted = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.unmount()

    def unmount(self) -> None:
        if self.mounted:
            _unmount(self.target)
            self.mounted = False
        try:
            self.target.rmdir()
        except OSError:
            pass  # the daemon's next start sweeps what is left (secretdirs.py)
