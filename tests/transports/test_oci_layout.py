"""oci_layout: an OCI image layout directory read in place, an image chosen by tag."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isula_build.errors import InvalidArgument, NotFound
from isula_build.transports.oci_layout import open_oci_layout
from tests.transports.transport_helpers import Image, oci_archive_members, read_all


def write_layout(path: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def test_an_image_is_chosen_by_tag_or_alone(tmp_path: Path, two_images: list[Image]) -> None:
    layout = write_layout(tmp_path, oci_archive_members(two_images, compress=True))
    with open_oci_layout(layout, "isb-test-srv:1") as source:
        config, layers = read_all(source)
    assert config == two_images[1].config and len(layers) == 2
    with open_oci_layout(layout, "1") as source:   # a bare tag matches NAME:TAG names too
        assert source.config_bytes() == two_images[0].config
    with open_oci_layout(layout) as source:        # no tag: the image named latest
        assert source.config_bytes() == two_images[1].config
    with pytest.raises(NotFound, match="has no image named 'v9'.*isb-test-app:1"):
        open_oci_layout(layout, "v9")


def test_blobs_are_checked_and_confined_to_the_layout(tmp_path: Path,
                                                      two_images: list[Image]) -> None:
    layout = write_layout(tmp_path / "layout", oci_archive_members(two_images[:1]))
    config = layout / "blobs" / "sha256" / two_images[0].image_id
    outside = tmp_path / "outside"
    outside.write_bytes(config.read_bytes())
    config.unlink()
    os.symlink(outside, config)     # the same bytes, but outside the layout
    with pytest.raises(InvalidArgument, match="missing from the layout"):
        open_oci_layout(layout)
    config.unlink()
    config.write_bytes(b"{}")
    with pytest.raises(InvalidArgument, match="does not match its descriptor"):
        open_oci_layout(layout)


def test_not_a_layout(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not an OCI image layout"):
        open_oci_layout(tmp_path)
    with pytest.raises(NotFound, match="does not exist"):
        open_oci_layout(tmp_path / "missing")
