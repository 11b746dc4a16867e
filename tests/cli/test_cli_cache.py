"""isula-build cache ls / cache prune and the cache line of info, real client and daemon."""

from __future__ import annotations

from pathlib import Path

from isula_build.store.fsutil import tree_size
from isula_build.units import parse_size

USING = " ---> Using cache"
DOCKERFILE = ("FROM busybox\n"
              "RUN head -c 300000 /dev/zero > /big\n"
              "RUN head -c 100000 /dev/zero > /small\n")


def _build(client, tmp_path: Path) -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return client("ctr-img", "build", str(ctx)).stdout


def _snapshot_bytes(daemon) -> int:
    """What the cache's snapshots (its steps' upper dirs) take on disk."""
    return sum(tree_size(p, on_disk=True) for p in (daemon.data_root / "cache/snapshots").iterdir())


def _ls_rows(client) -> tuple[list[list[str]], str]:
    lines = client("cache", "ls").stdout.splitlines()
    assert lines[0].split() == ["ID", "SIZE", "LAST", "USED", "STEP"]
    assert lines[-1].startswith("Total: ")
    return [line.split("   ") for line in lines[1:-1]], lines[-1]


def test_ls_info_and_prune_all(client, daemon, busybox_image: str, tmp_path: Path) -> None:
    _build(client, tmp_path)
    assert USING in _build(client, tmp_path)
    rows, total = _ls_rows(client)
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row if c.strip()]
        assert len(cells[0]) == 12 and cells[1].endswith("KB")
        assert cells[2].endswith(" ago") and cells[3].startswith("RUN head -c ")
    assert parse_size(total.removeprefix("Total: ").replace(" ", "")) > 300_000
    info = client("info").stdout.splitlines()
    cache_line = next(line for line in info if line.startswith("  Build Cache:"))
    assert int(cache_line.split()[-1]) == _snapshot_bytes(daemon) > 300_000
    assert info.index(cache_line) == info.index("Store:") + 3   # under the store's lines

    out = client("cache", "prune", "--all").stdout
    assert out.startswith("Total reclaimed space: ") and not out.endswith(" 0 B\n")
    rows, total = _ls_rows(client)
    assert rows == [] and total == "Total: 0 B"
    assert USING not in _build(client, tmp_path)


def test_prune_keep_storage_keeps_at_most_size(client, daemon, busybox_image: str,
                                               tmp_path: Path) -> None:
    _build(client, tmp_path)
    before = _snapshot_bytes(daemon)
    keep = before - 1
    out = client("cache", "prune", "--keep-storage", str(keep)).stdout
    assert out.startswith("Total reclaimed space: ") and out != "Total reclaimed space: 0 B\n"
    assert 0 < _snapshot_bytes(daemon) <= keep
    assert client("cache", "prune").stdout == "Total reclaimed space: 0 B\n"


def test_bad_keep_storage_is_refused(client) -> None:
    r = client("cache", "prune", "--keep-storage", "lots", check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert 'invalid --keep-storage "lots"' in r.stderr
