"""Fixtures of the store tests: a real Store on a fresh data root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from isula_build.store import Store


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_root: Path) -> Iterator[Store]:
    s = Store(data_root)
    yield s
    s.close()
