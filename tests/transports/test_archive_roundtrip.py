"""docker-archive and oci-archive: reading the layouts in use, and writer → reader round trips."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from isula_build.errors import InvalidArgument
from isula_build.transports.archive import detect_archive_format, open_archive
from isula_build.transports.copy import copy_image
from isula_build.transports.docker_archive import DockerArchiveWriter, chain_ids
from isula_build.transports.oci_archive import OciArchiveWriter
from transport_helpers import (Image, docker_archive_members, make_layer, oci_archive_members,
                               read_all, sha, tar_names, write_tar)

COPY_LINES = ["Getting image source signatures", "Copying config", "Writing manifest to image destination",
              "Storing signatures"]


def expected_log(image: Image) -> list[str]:
    return (["Getting image source signatures"]
            + [f"Copying blob {sha(layer)}" for layer in image.layers]
            + [f"Copying config sha256:{image.image_id}",
               "Writing manifest to image destination", "Storing signatures"])


@pytest.mark.parametrize("layout", ["skopeo", "legacy", "docker25"])
@pytest.mark.parametrize("compress", [False, True, "zstd"])
def test_reads_docker_archive_layouts(tmp_path: Path, two_images: list[Image], layout: str,
                                      compress: bool | str) -> None:
    path = write_tar(tmp_path / "in.tar", docker_archive_members(two_images, layout, compress))
    assert detect_archive_format(path) == "docker-archive"
    opened = open_archive(path)
    assert [names for _, names in opened] == [img.tags for img in two_images]
    for (source, _), image in zip(opened, two_images):
        with source:
            config, layers = read_all(source)
            assert config == image.config
            assert layers == image.layers
            sizes = [layer.size for layer in source.layers()]
            assert sizes == ([-1, -1] if compress else [len(l) for l in image.layers])


def test_reads_legacy_layout_with_symlinked_duplicate_layer(tmp_path: Path) -> None:
    # docker save before 25 stores a layer once and links later copies to it.
    layer = make_layer({"a": b"1"})
    image = Image([layer], ["isb-test-l:1"])
    members = {"orig/layer.tar": layer, f"{image.image_id}.json": image.config,
               "manifest.json": json.dumps([{"Config": f"{image.image_id}.json",
                                             "RepoTags": image.tags,
                                             "Layers": ["dup/layer.tar"]}]).encode()}
    path = write_tar(tmp_path / "in.tar", members, symlinks={"dup/layer.tar": "../orig/layer.tar"})
    [(source, names)] = open_archive(path)
    with source:
        assert read_all(source) == (image.config, [layer])


@pytest.mark.parametrize("compress", [False, True, "zstd"])
def test_reads_oci_archive(tmp_path: Path, two_images: list[Image], compress: bool | str) -> None:
    path = write_tar(tmp_path / "in.tar", oci_archive_members(two_images, compress))
    assert detect_archive_format(path) == "oci-archive"
    opened = open_archive(path)
    # One source per manifest; the two descriptors of the second image become two names.
    assert [names for _, names in opened] == [img.tags for img in two_images]
    for (source, _), image in zip(opened, two_images):
        with source:
            assert read_all(source) == (image.config, image.layers)


def _save(writer_class, path: Path, sources: list, log) -> list[str]:
    ids = []
    with writer_class(path) as archive:
        for source, names in sources:
            with source, archive.image(names) as dst:
                ids.append(copy_image(source, dst, log))
    return ids


def test_docker_archive_round_trip_shares_layers(tmp_path: Path, two_images: list[Image],
                                                 log) -> None:
    src = write_tar(tmp_path / "in.tar", docker_archive_members(two_images, "legacy", compress=True))
    out = tmp_path / "out.tar"
    ids = _save(DockerArchiveWriter, out, open_archive(src), log)
    assert ids == [img.image_id for img in two_images]
    # The shared base layer is announced for both images but written once.
    first, second = two_images
    assert log == expected_log(first) + expected_log(second)
    names = tar_names(out)
    assert sorted(names) == sorted({f"{sha(l)[7:]}.tar" for img in two_images for l in img.layers}
                                   | {f"{img.image_id}.json" for img in two_images}
                                   | {"manifest.json", "repositories"})
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        repositories = json.load(tar.extractfile("repositories"))
        # Layers are stored uncompressed: each member's digest is its diff ID.
        for img in two_images:
            for layer in img.layers:
                assert tar.extractfile(f"{sha(layer)[7:]}.tar").read() == layer
    assert manifest == [{"Config": f"{img.image_id}.json", "RepoTags": img.tags,
                         "Layers": [f"{sha(l)[7:]}.tar" for l in img.layers]} for img in two_images]
    top = chain_ids([sha(l) for l in second.layers])[-1][7:]
    assert repositories["isb-test-srv"] == {"1": top, "latest": top}

    reread = open_archive(out)
    assert [names for _, names in reread] == [img.tags for img in two_images]
    for (source, _), image in zip(reread, two_images):
        with source:
            assert read_all(source) == (image.config, image.layers)


def test_oci_archive_round_trip_shares_layers(tmp_path: Path, two_images: list[Image],
                                              log) -> None:
    src = write_tar(tmp_path / "in.tar", docker_archive_members(two_images, "skopeo"))
    out = tmp_path / "out.tar"
    ids = _save(OciArchiveWriter, out, open_archive(src), log)
    assert ids == [img.image_id for img in two_images]
    assert log == expected_log(two_images[0]) + expected_log(two_images[1])
    names = tar_names(out)
    layer_blobs = {f"blobs/sha256/{sha(l)[7:]}" for img in two_images for l in img.layers}
    assert len(layer_blobs) == 3 and layer_blobs <= set(names)
    assert len(names) == len(set(names)), "a shared blob was written twice"
    with tarfile.open(out) as tar:
        index = json.load(tar.extractfile("index.json"))
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        for desc in index["manifests"]:
            manifest = json.load(tar.extractfile(f"blobs/sha256/{desc['digest'][7:]}"))
            assert manifest["mediaType"] == desc["mediaType"] == \
                "application/vnd.oci.image.manifest.v1+json"
            assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
            assert {l["mediaType"] for l in manifest["layers"]} == \
                {"application/vnd.oci.image.layer.v1.tar"}
    assert [d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]] == \
        ["isb-test-app:1", "isb-test-srv:1", "isb-test-srv:latest"]

    reread = open_archive(out)
    assert [names for _, names in reread] == [img.tags for img in two_images]
    for (source, _), image in zip(reread, two_images):
        with source:
            assert read_all(source) == (image.config, image.layers)


@pytest.mark.parametrize("writer_class", [DockerArchiveWriter, OciArchiveWriter])
def test_same_image_twice_merges_names_and_a_name_moves(tmp_path: Path, two_images: list[Image],
                                                        writer_class, log) -> None:
    src = write_tar(tmp_path / "in.tar", docker_archive_members(two_images))
    out = tmp_path / "out.tar"
    with writer_class(out) as archive:
        for names in (["isb-test-a:1"], ["isb-test-a:2"]):
            [(source, _), _other] = open_archive(src)
            with source, archive.image(names) as dst:
                copy_image(source, dst, log)
        # "isb-test-a:2" moves to the second image, as a name moves between images in the store.
        _first, (source, _) = open_archive(src)
        with source, archive.image(["isb-test-a:2"]) as dst:
            copy_image(source, dst, log)
    reread = open_archive(out)
    assert [names for _, names in reread] == [["isb-test-a:1"], ["isb-test-a:2"]]
    assert [s.config_bytes() for s, _ in reread] == [img.config for img in two_images]
    for s, _ in reread:
        s.close()


@pytest.mark.parametrize("writer_class", [DockerArchiveWriter, OciArchiveWriter])
def test_failed_copy_leaves_no_file(tmp_path: Path, writer_class, log) -> None:
    good = make_layer({"a": b"good"})
    image = Image([good], ["isb-test-bad:1"])
    members = docker_archive_members([image])
    members[f"{sha(good)[7:]}.tar"] = make_layer({"a": b"evil"})  # content ≠ config diff ID
    src = write_tar(tmp_path / "in.tar", members)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InvalidArgument, match="does not match"):
        _save(writer_class, out_dir / "out.tar", open_archive(src), log)
    assert list(out_dir.iterdir()) == []
    assert "Copying config" not in " ".join(log)


@pytest.mark.parametrize("writer_class", [DockerArchiveWriter, OciArchiveWriter])
def test_existing_target_is_replaced_only_on_success(tmp_path: Path, two_images: list[Image],
                                                     writer_class, log) -> None:
    out = tmp_path / "out.tar"
    out.write_bytes(b"previous content")
    with pytest.raises(RuntimeError):
        with writer_class(out) as archive:
            [(source, names), _] = open_archive(write_tar(tmp_path / "in.tar",
                                                          docker_archive_members(two_images)))
            with source, archive.image(names) as dst:
                copy_image(source, dst, log)
            raise RuntimeError("interrupted")
    assert out.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tar", "out.tar"]


def test_docker_to_oci_to_docker_keeps_image_ids(tmp_path: Path, two_images: list[Image],
                                                 log) -> None:
    a = write_tar(tmp_path / "a.tar", docker_archive_members(two_images, "docker25", compress=True))
    _save(OciArchiveWriter, tmp_path / "b.tar", open_archive(a), log)
    ids = _save(DockerArchiveWriter, tmp_path / "c.tar", open_archive(tmp_path / "b.tar"), log)
    assert ids == [img.image_id for img in two_images]
