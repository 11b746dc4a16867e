"""Separated save and load end to end: the real isula-build client against real isula-builder
daemons, the images loaded from docker-archives built here (base = 1 layer, lib = base + 1,
two apps = lib + 1 each)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from separated_helpers import make_tar

BASE, LIB = "isb-test-base:1", "isb-test-lib:1"
APP1, APP2 = "isb-test-app1:latest", "isb-test-app2:v2"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_archive(path: Path, layers: list[bytes], name: str) -> str:
    """A docker-archive of one image; returns its image ID."""
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["sh"], "Labels": {"image": name}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha(l)}" for l in layers]},
    }).encode()
    members = {f"{sha(l)}.tar": l for l in layers}
    members[f"{sha(config)}.json"] = config
    members["manifest.json"] = json.dumps([{
        "Config": f"{sha(config)}.json", "RepoTags": [name],
        "Layers": [f"{sha(l)}.tar" for l in layers]}]).encode()
    with tarfile.open(path, "w") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sha(config)


@pytest.fixture
def app_ids(client, tmp_path: Path) -> dict[str, str]:
    base = make_tar({"etc/os-release": b"NAME=isb-test\n", "bin/tool": os.urandom(200_000)})
    lib = make_tar({"usr/lib/libx.so": b"lib" * 30_000})
    layers = {BASE: [base], LIB: [base, lib],
              APP1: [base, lib, make_tar({"app/one": b"one\n"})],
              APP2: [base, lib, make_tar({"app/two": b"two\n"})]}
    ids = {}
    for name, image_layers in layers.items():
        archive = tmp_path / f"{name.replace(':', '_')}.tar"
        ids[name] = write_archive(archive, image_layers, name)
        assert f"Loaded image as {ids[name]}" in client("ctr-img", "load", "-i", str(archive)).stdout
    return ids


def test_round_trip_onto_a_daemon_with_an_empty_store(client, app_ids, daemon_factory,
                                                      tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    out = client("ctr-img", "save", "-b", BASE, "-l", LIB, "-d", str(dest), APP1, APP2).stdout
    assert out.count("Getting image source signatures") == 2
    assert out.rstrip().endswith(f"Save success with image: [{APP1} {APP2}]")
    manifest = json.loads((dest / "manifest").read_bytes())
    assert sorted(manifest) == [APP1, APP2]

    other = daemon_factory("empty")
    other.start()
    fresh = type(client)(other)  # the shared Client of tests/conftest.py
    out = fresh("ctr-img", "load", "-d", str(dest), "-i", APP1).stdout
    assert out.rstrip().endswith(f"Loaded image as {app_ids[APP1]}")
    entry = manifest[APP2]
    out = fresh("ctr-img", "load", "-d", str(dest), "-b", str(dest / entry["base"]),
                "-l", str(dest / entry["lib"]), "-i", "isb-test-app2:v2").stdout
    assert out.rstrip().endswith(f"Loaded image as {app_ids[APP2]}")
    listed = fresh("ctr-img", "images").stdout
    for name, tag in (("isb-test-app1", "latest"), ("isb-test-app2", "v2")):
        assert any(line.split()[:3] == [name, tag, app_ids[f"{name}:{tag}"][:12]]
                   for line in listed.splitlines() if line.strip())


def test_bad_input_through_the_client(client, app_ids, tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    by_id = client("ctr-img", "save", "-b", BASE, "-d", str(dest), app_ids[APP1], check=False)
    assert by_id.returncode == 1
    assert "as image name to save separated image is not allowed" in by_id.stderr
    assert not dest.exists()

    not_on_lib = client("ctr-img", "save", "-b", BASE, "-l", APP2, "-d", str(dest), APP1,
                        check=False)
    assert not_on_lib.returncode == 1
    assert f"app image {APP1} is not built on lib image {APP2}" in not_on_lib.stderr
    assert not dest.exists()

    client("ctr-img", "save", "-b", BASE, "-l", LIB, "-d", str(dest), APP1)
    client("ctr-img", "rm", APP1)
    before = client("ctr-img", "images").stdout
    tarball = dest / json.loads((dest / "manifest").read_bytes())[APP1]["app"]
    data = bytearray(tarball.read_bytes())
    data[-40] ^= 0x10
    tarball.write_bytes(bytes(data))
    tampered = client("ctr-img", "load", "-d", str(dest), "-i", APP1, check=False)
    assert tampered.returncode == 1 and "check sum for file" in tampered.stderr
    unchecked = client("ctr-img", "load", "-d", str(dest), "-i", APP1, "--no-check", check=False)
    assert "Warning: --no-check given" in unchecked.stdout
    assert unchecked.returncode == 1
    assert client("ctr-img", "images").stdout == before

    (dest / "manifest").write_text("{")
    broken = client("ctr-img", "load", "-d", str(dest), "-i", APP1, check=False)
    assert broken.returncode == 1 and "not valid JSON" in broken.stderr


def test_missing_parents_of_the_destination_are_created(client, app_ids, tmp_path: Path) -> None:
    # The original makes them (MkdirAll, 0700); the save still goes through a temporary
    # directory beside the destination, renamed into place at the end.
    dest = tmp_path / "new" / "deeper" / "Images"
    out = client("ctr-img", "save", "-b", BASE, "-l", LIB, "-d", str(dest), APP1).stdout
    assert out.rstrip().endswith(f"Save success with image: {APP1}")
    assert APP1 in json.loads((dest / "manifest").read_bytes())
    for made in (tmp_path / "new", dest.parent):
        assert made.stat().st_mode & 0o777 == 0o700
    assert os.listdir(dest.parent) == ["Images"], "no temporary directory is left beside it"

    (tmp_path / "file").write_text("")
    blocked = client("ctr-img", "save", "-b", BASE, "-d", str(tmp_path / "file" / "sub" / "Images"),
                     APP1, check=False)
    assert blocked.returncode == 1
    assert f"{tmp_path / 'file'} exists and is not a directory" in blocked.stderr
