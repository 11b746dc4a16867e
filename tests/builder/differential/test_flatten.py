"""The flattener on hand-made layers: whiteouts, opaque directories, replacements, links."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from flatten import Entry, apply_layer, flatten_archive, normalize


def _layer(*members: tuple[str, str, str | bytes]) -> bytes:
    """A tar of (name, kind, data-or-target) with kind in file/dir/symlink/hardlink/fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            body = None
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size, body = len(data), io.BytesIO(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(payload)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, body)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _apply(*layers: bytes) -> dict[str, Entry]:
    tree: dict[str, Entry] = {}
    for layer in layers:
        apply_layer(tree, io.BytesIO(layer))
    return tree


def test_normalize_names() -> None:
    assert normalize("./a/b/") == "/a/b"
    assert normalize("a") == "/a"
    assert normalize("./") == "/"
    assert normalize("/x//y/./z") == "/x/y/z"


def test_files_dirs_links_are_recorded() -> None:
    tree = _apply(_layer(("./", "dir", ""), ("a/", "dir", ""), ("a/f", "file", "hello"),
                         ("a/s", "symlink", "f"), ("a/p", "fifo", "")))
    assert "/" not in tree
    assert tree["/a"] == Entry("dir", "0755", 0, 0)
    assert tree["/a/f"] == Entry("file", "0644", 0, 0, 5, _sha(b"hello"))
    assert tree["/a/s"].link == "f" and tree["/a/s"].type == "symlink"
    assert tree["/a/p"].type == "fifo"


def test_whiteout_removes_a_lower_subtree() -> None:
    tree = _apply(_layer(("d/", "dir", ""), ("d/x", "file", "x"), ("d/sub/", "dir", ""),
                         ("d/sub/y", "file", "y"), ("keep", "file", "k")),
                  _layer(("d/.wh.sub", "file", ""), (".wh.keep", "file", "")))
    assert sorted(tree) == ["/d", "/d/x"]


def test_opaque_dir_hides_lower_entries_but_keeps_its_own() -> None:
    # The marker comes after the layer's own entry of that directory: it must not remove it.
    tree = _apply(_layer(("d/", "dir", ""), ("d/old", "file", "o"), ("other", "file", "x")),
                  _layer(("d/", "dir", ""), ("d/new", "file", "n"), ("d/.wh..wh..opq", "file", "")))
    assert sorted(tree) == ["/d", "/d/new", "/other"]


def test_a_file_replacing_a_directory_drops_its_subtree() -> None:
    tree = _apply(_layer(("p/", "dir", ""), ("p/child", "file", "c")),
                  _layer(("p", "file", "now a file")))
    assert sorted(tree) == ["/p"] and tree["/p"].type == "file"


def test_a_directory_over_a_directory_keeps_children_and_takes_new_metadata() -> None:
    lower = _layer(("p/", "dir", ""), ("p/child", "file", "c"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("p")
        info.type, info.mode, info.uid = tarfile.DIRTYPE, 0o700, 7
        tar.addfile(info)
    tree = _apply(lower, buf.getvalue())
    assert tree["/p"] == Entry("dir", "0700", 7, 0)
    assert "/p/child" in tree


def test_hard_links_become_files_with_the_target_content() -> None:
    tree = _apply(_layer(("a", "file", "shared"), ("b", "hardlink", "a")),
                  _layer(("c", "hardlink", "a")))
    assert tree["/b"] == tree["/a"] == tree["/c"]
    assert tree["/c"].sha256 == _sha(b"shared")


def test_flatten_archive_reads_a_docker_archive(tmp_path: Path) -> None:
    config = {"author": "me", "config": {"Env": ["A=1"], "Cmd": None, "Labels": {"x": "y"},
                                         "Hostname": "volatile"}}
    layers = [_layer(("a", "file", "1"), ("b", "file", "2")), _layer((".wh.a", "file", ""))]
    archive = tmp_path / "img.tar"
    with tarfile.open(archive, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("cfg.json", json.dumps(config).encode())
        for i, layer in enumerate(layers):
            add(f"l{i}/layer.tar", layer)
        add("manifest.json", json.dumps([{"Config": "cfg.json", "RepoTags": ["x:latest"],
                                          "Layers": ["l0/layer.tar", "l1/layer.tar"]}]).encode())
    image = flatten_archive(archive)
    assert sorted(image.tree) == ["/b"]
    assert image.config == {"Env": ["A=1"], "Labels": {"x": "y"}}  # null and volatile fields out
    assert image.author == "me"


def test_differences_name_paths_config_and_author_and_skip_volatile_files() -> None:
    from diffcompare import differences
    from flatten import FlatImage

    f = Entry("file", "0644", 0, 0, 1, "aa")
    docker = FlatImage({"User": "a", "Env": ["X=1"]}, "me",
                       {"/same": f, "/only-docker": f, "/etc/hosts": f, "/mode": f})
    ours = FlatImage({"User": "b", "Env": ["X=1"]}, None,
                     {"/same": f, "/mode": Entry("file", "0600", 0, 0, 1, "aa")})
    assert differences(docker, ours) == [
        {"path": "/mode", "docker": f.to_json(), "ours": {**f.to_json(), "mode": "0600"}},
        {"path": "/only-docker", "docker": f.to_json(), "ours": None},
        {"config": "User", "docker": "a", "ours": "b"},
        {"author": True, "docker": "me", "ours": None},
    ]
