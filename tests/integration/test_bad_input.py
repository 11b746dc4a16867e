"""Bad input through the real client and daemon: a clear error, exit code 1, the store unchanged."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from .helpers import add_file, make_rootfs_tar, store_snapshot


@pytest.fixture
def unchanged(daemon, client, busybox_image):
    """Asserts, after the test body, that the image list and the store files did not change."""
    before = (client("ctr-img", "images").stdout, store_snapshot(daemon.data_root))
    yield
    after = (client("ctr-img", "images").stdout, store_snapshot(daemon.data_root))
    assert after == before


def fails(client, *args: str) -> str:
    result = client(*args, check=False)
    assert result.returncode == 1, result
    assert result.stderr.strip(), "an error must say what is wrong"
    return result.stderr


def escaping_tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w") as tar:
        add_file(tar, "ok.txt", b"fine")
        if kind == "dotdot":
            add_file(tar, "../escape.txt", b"x")
        elif kind == "absolute":
            add_file(tar, "/etc/escape.txt", b"x")
        elif kind in ("symlink-out", "through-symlink", "through-hardlinked-symlink"):
            # Climbing above the root is fine in itself ("/.." is "/" in the container): what
            # is refused is writing through the link, or through a hard link to it.
            link = tarfile.TarInfo("etc-link")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc" if kind == "through-hardlinked-symlink" else "../../../../../../etc"
            tar.addfile(link)
            through = "etc-link"
            if kind == "through-hardlinked-symlink":
                hard = tarfile.TarInfo("hard")
                hard.type, hard.linkname, through = tarfile.LNKTYPE, "etc-link", "hard"
                tar.addfile(hard)
            if kind != "symlink-out":
                add_file(tar, f"{through}/passwd", b"x")
        elif kind == "hardlink-out":
            link = tarfile.TarInfo("hard")
            link.type = tarfile.LNKTYPE
            link.linkname = "../../etc/passwd"
            tar.addfile(link)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "through-symlink",
                                  "through-hardlinked-symlink", "hardlink-out"])
def test_import_refuses_escaping_entries(client, unchanged, tmp_path, kind):
    err = fails(client, "ctr-img", "import", str(escaping_tar(tmp_path / f"{kind}.tar", kind)), f"bad:{kind}")
    assert "Traceback" not in err


def test_import_keeps_a_symlink_climbing_above_the_root(client, tmp_path):
    out = client("ctr-img", "import", str(escaping_tar(tmp_path / "climb.tar", "symlink-out")),
                 "climb:1").stdout
    assert "Import success with image id:" in out


def test_import_missing_file(client, unchanged, tmp_path):
    err = fails(client, "ctr-img", "import", str(tmp_path / "nope.tar"), "x:1")
    assert "nope.tar" in err


def test_import_not_a_tar(client, unchanged, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive at all\n" * 100)
    fails(client, "ctr-img", "import", str(junk), "x:1")


def test_import_truncated_gzip(client, unchanged, tmp_path, busybox_tar):
    data = gzip.compress(busybox_tar.read_bytes())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    fails(client, "ctr-img", "import", str(cut), "x:1")


@pytest.mark.parametrize("name", ["UPPER:case", "a" * 256, "ok:" + "t" * 129, "bad name", "x:-tag"])
def test_import_invalid_name(client, unchanged, tmp_path, name):
    tar = make_rootfs_tar(tmp_path / "small.tar", {"a.txt": b"a"})
    fails(client, "ctr-img", "import", str(tar), name)


def test_load_not_an_image(client, unchanged, tmp_path):
    tar = make_rootfs_tar(tmp_path / "plain.tar", {"a.txt": b"a"})
    fails(client, "ctr-img", "load", "-i", str(tar))


def test_load_truncated_archive(client, unchanged, tmp_path, busybox_image):
    saved = tmp_path / "saved.tar"
    client("ctr-img", "save", "busybox:latest", "-o", str(saved))
    data = saved.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) * 2 // 3])
    client("ctr-img", "rm", "busybox:latest")
    try:
        fails(client, "ctr-img", "load", "-i", str(cut))
    finally:
        client("ctr-img", "load", "-i", str(saved))


def rewrite_archive(src: Path, dst: Path, change) -> None:
    """Copies a tar, letting change(name, data) return new bytes for a member."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read() if member.isfile() else None
            if data is not None:
                data = change(member.name, data)
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))
            else:
                tout.addfile(member)


def test_load_layer_digest_mismatch(client, unchanged, tmp_path, busybox_image):
    saved = tmp_path / "saved.tar"
    client("ctr-img", "save", "busybox:latest", "-o", str(saved))
    manifest = json.loads(tarfile.open(saved).extractfile("manifest.json").read())
    layer_name = manifest[0]["Layers"][0]

    def corrupt(name: str, data: bytes) -> bytes:
        if name != layer_name:
            return data
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            members = [(m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as t:
            for m, content in members:
                t.addfile(m, io.BytesIO(content) if content is not None else None)
            add_file(t, "smuggled.txt", b"not in the original layer")
        return out.getvalue()

    bad = tmp_path / "bad.tar"
    rewrite_archive(saved, bad, corrupt)
    client("ctr-img", "rm", "busybox:latest")
    try:
        err = fails(client, "ctr-img", "load", "-i", str(bad))
        assert "digest" in err.lower()
    finally:
        client("ctr-img", "load", "-i", str(saved))


def test_load_config_digest_mismatch(client, unchanged, tmp_path, busybox_image):
    saved = tmp_path / "saved.tar"
    client("ctr-img", "save", "busybox:latest", "-o", str(saved))
    manifest = json.loads(tarfile.open(saved).extractfile("manifest.json").read())
    config_name = manifest[0]["Config"]

    def tamper(name: str, data: bytes) -> bytes:
        if name != config_name:
            return data
        config = json.loads(data)
        config["author"] = "someone else"
        return json.dumps(config).encode()

    bad = tmp_path / "bad.tar"
    rewrite_archive(saved, bad, tamper)
    client("ctr-img", "rm", "busybox:latest")
    try:
        err = fails(client, "ctr-img", "load", "-i", str(bad))
        assert "digest" in err.lower()
    finally:
        client("ctr-img", "load", "-i", str(saved))


def test_unknown_image(client, unchanged, tmp_path):
    for args in (["ctr-img", "rm", "nosuch:image"], ["ctr-img", "tag", "nosuch", "other:1"],
                 ["ctr-img", "save", "nosuch", "-o", str(tmp_path / "x.tar")]):
        err = fails(client, *args)
        assert "nosuch" in err
    assert not (tmp_path / "x.tar").exists()


@pytest.mark.parametrize("member", ["manifest.json", "config"])
def test_load_deeply_nested_json(client, unchanged, tmp_path, member):
    # json.loads of a document nested 100,000 deep ran out of stack: "internal error".
    nested = b"[" * 100_000 + b"]" * 100_000
    config = nested if member == "config" else b"{}"
    archive = tmp_path / "nested.tar"
    with tarfile.open(archive, "w") as tar:
        add_file(tar, "c.json", config)
        manifest = [{"Config": "c.json", "RepoTags": ["nested:1"], "Layers": []}]
        add_file(tar, "manifest.json", nested if member == "manifest.json" else
                 json.dumps(manifest).encode())
    err = fails(client, "ctr-img", "load", "-i", str(archive))
    assert "nested more than 100 deep" in err and "internal error" not in err


def colliding_archive(path: Path, prefix_len: int = 3) -> tuple[Path, str]:
    """A docker-archive of two images whose IDs share their first prefix_len hex digits.

    The two configs differ only in a comment, varied until two digests collide on the prefix
    (a birthday search: about a hundred sha256 computations for three digits).
    """
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        add_file(t, "a.txt", b"shared layer")
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    seen: dict[str, bytes] = {}
    n = 0
    while True:
        config = json.dumps({"architecture": "amd64", "os": "linux", "comment": f"variant {n}",
                             "created": "2020-01-01T00:00:00Z", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        digest = hashlib.sha256(config).hexdigest()
        if digest[:prefix_len] in seen and seen[digest[:prefix_len]] != config:
            pair = [seen[digest[:prefix_len]], config]
            break
        seen[digest[:prefix_len]] = config
        n += 1
    with tarfile.open(path, "w") as tar:
        add_file(tar, "layer.tar", layer_bytes)
        manifest = []
        for k, cfg in enumerate(pair):
            name = hashlib.sha256(cfg).hexdigest() + ".json"
            add_file(tar, name, cfg)
            manifest.append({"Config": name, "RepoTags": [f"collide:{k}"], "Layers": ["layer.tar"]})
        add_file(tar, "manifest.json", json.dumps(manifest).encode())
    return path, digest[:prefix_len]


def test_ambiguous_prefix(client, daemon, tmp_path):
    archive, prefix = colliding_archive(tmp_path / "collide.tar")
    assert client("ctr-img", "load", "-i", str(archive)).stdout.count("Loaded image as") == 2
    before = (client("ctr-img", "images").stdout, store_snapshot(daemon.data_root))
    err = fails(client, "ctr-img", "rm", prefix)
    assert "ambiguous" in err.lower() or "multiple" in err.lower()
    assert prefix in err
    assert (client("ctr-img", "images").stdout, store_snapshot(daemon.data_root)) == before


def test_save_then_load_unknown_file(client, unchanged, tmp_path):
    err = fails(client, "ctr-img", "load", "-i", str(tmp_path / "missing.tar"))
    assert "missing.tar" in err


def test_unreadable_input_files(client, unchanged, tmp_path):
    # The daemon runs as root, so permissions cannot make a file unreadable to it; a directory
    # given where a file belongs is the unreadable input that can happen.
    folder = tmp_path / "a-directory.tar"
    folder.mkdir()
    for args in (["ctr-img", "import", str(folder), "x:1"], ["ctr-img", "load", "-i", str(folder)]):
        err = fails(client, *args)
        assert "a-directory.tar" in err and "Traceback" not in err
