"""Fixtures of the separated-image tests: a real Store holding a base image (an imported root
filesystem tarball), a lib image on it, two app images on the lib and one more on the base."""

from __future__ import annotations

from pathlib import Path

import pytest

from isula_build.store import Store
from separated_helpers import Images, build_images


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "store") as s:
        yield s


@pytest.fixture
def images(store: Store, tmp_path: Path) -> Images:
    return build_images(store, tmp_path)


@pytest.fixture
def empty_store(tmp_path: Path):
    with Store(tmp_path / "other-store") as s:
        yield s
