"""Names and values written step by step, readable as they were at any earlier step.

A stage's build environment grows with every ENV and ARG, and each step must see it as it was
at that step. Copying the environment for each step costs time quadratic in the number of
instructions (a 1 MiB Dockerfile holds 60,000 ENV lines); a Timeline keeps every write once,
stamped with the step that made it, and a view "before stamp T" answers a lookup with a binary
search over that one name's writes. Stamps only grow.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping


class FirstWrites:
    """Names in the order they were first written, with the stamp of that first write."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}
        self._names: list[str] = []
        self._stamps: list[int] = []  # parallel to _names, never decreasing

    def add(self, stamp: int, name: str) -> None:
        if name not in self._first:
            self._first[name] = stamp
            self._names.append(name)
            self._stamps.append(stamp)

    def has_before(self, name: str, stamp: int) -> bool:
        first = self._first.get(name)
        return first is not None and first < stamp

    def count_before(self, stamp: int) -> int:
        return bisect_left(self._stamps, stamp)

    def names_before(self, stamp: int) -> Iterator[str]:
        names = self._names
        return (names[i] for i in range(self.count_before(stamp)))


class Timeline:
    """Values written over time; `value_before(name, T)` is the last one written before T."""

    def __init__(self) -> None:
        self.names = FirstWrites()
        self._stamps: dict[str, list[int]] = {}
        self._values: dict[str, list[str]] = {}

    def write(self, stamp: int, name: str, value: str) -> None:
        stamps = self._stamps.get(name)
        if stamps is None:
            self.names.add(stamp, name)
            self._stamps[name] = [stamp]
            self._values[name] = [value]
        elif stamps[-1] == stamp:
            self._values[name][-1] = value  # written twice by one step: the last write counts
        else:
            stamps.append(stamp)
            self._values[name].append(value)

    def value_before(self, name: str, stamp: int) -> str | None:
        stamps = self._stamps.get(name)
        if stamps is None or stamps[0] >= stamp:
            return None
        return self._values[name][bisect_left(stamps, stamp) - 1]


class TimelineView(Mapping[str, str]):
    """A timeline as it was before `stamp`, its names in first-write order."""

    def __init__(self, timeline: Timeline, stamp: int) -> None:
        self._timeline = timeline
        self._stamp = stamp

    def __getitem__(self, name: str) -> str:
        value = self._timeline.value_before(name, self._stamp)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._timeline.names.has_before(name, self._stamp)

    def __iter__(self) -> Iterator[str]:
        return self._timeline.names.names_before(self._stamp)

    def __len__(self) -> int:
        return self._timeline.names.count_before(self._stamp)
