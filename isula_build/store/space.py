"""The free space kept on the data root's filesystem: work that would eat into it is refused.

A daemon that fills the filesystem of its data root harms more than its own next write: the
other services on that filesystem, and the daemon's own database and start-up recovery, need
room as well. So every write into the data root that can be large — a layer blob (import, load,
pull, a build's commit), a layer's extraction, a build's work dir — asks a SpaceGuard first and
then every CHECK_INTERVAL bytes while it runs, and stops with ResourceExhausted once the free
space is below the reserve; the writer then removes what it wrote, as after any other failure.

The checks are statvfs calls (about a microsecond), so they cost nothing next to the writes.
Writes of unknown length are only caught once they have eaten into the reserve, by at most
CHECK_INTERVAL: the reserve is a floor kept for others, not an exact quota.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from isula_build.errors import ResourceExhausted
from isula_build.units import format_binary_size

CHECK_INTERVAL = 16 << 20


@dataclass(frozen=True)
class SpaceReserve:
    """How much space to keep free (bytes; 0 turns the checks off), and how to name the setting
    that decides it in the error, e.g. "min_free_space in /etc/isula-build/configuration.toml"."""

    min_free: int = 0
    setting: str = "the data root's free space reserve"


class SpaceGuard:
    """Refuses work while the filesystem holding `root` has less than the reserve free."""

    def __init__(self, root: Path, reserve: SpaceReserve) -> None:
        self.root = root
        self.reserve = reserve

    def free_bytes(self) -> int:
        """Space available on root's filesystem (to unprivileged users: root's own reserved
        blocks are the last resort of the whole system, not the daemon's)."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def check(self) -> None:
        """ResourceExhausted when less than the reserve is free."""
        if not self.reserve.min_free:
            return
        free = self.free_bytes()
        if free < self.reserve.min_free:
            raise ResourceExhausted(
                f"not enough free space on the filesystem of the data root {self.root}: "
                f"{format_binary_size(free)} left, less than the "
                f"{format_binary_size(self.reserve.min_free)} kept free ({self.reserve.setting}); "
                "free some space, or lower that setting")

    def meter(self) -> SpaceMeter:
        """A meter for one write, checked now and then every CHECK_INTERVAL bytes written."""
        self.check()
        return SpaceMeter(self)


class SpaceMeter:
    """Counts the bytes one write has added; checks the guard every CHECK_INTERVAL of them."""

    def __init__(self, guard: SpaceGuard) -> None:
        self._guard = guard
        self._unchecked = 0

    def wrote(self, count: int) -> None:
        self._unchecked += count
        if self._unchecked >= CHECK_INTERVAL:
            self._unchecked = 0
            self._guard.check()


__all__ = ["CHECK_INTERVAL", "SpaceGuard", "SpaceMeter", "SpaceReserve"]
