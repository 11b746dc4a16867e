"""The build cache (builder/cache.py, stagecache.py, copydigest.py) through the engine: hits,
the reason of each miss, --no-cache, and the same image as a clean build."""

from __future__ import annotations

import json
import os
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from isula_build.builder.builder import BuildEnvironment, BuildInput, build_image
from isula_build.builder.cache import BOOT_ID, BuildCache, CacheEntry, open_cache
from isula_build.builder.stagecache import miss_reason
from isula_build.store import Store
from isula_build.transports.copy import copy_image
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination

from tests.builder.test_executor import STATIC, write

USING = " ---> Using cache"


@dataclass
class CachedEngine:
    root: Path
    store: Store
    lines: list[str]

    @property
    def env(self) -> BuildEnvironment:
        data = self.root / "data"
        return BuildEnvironment(store=self.store, data_root=data, run_root=self.root / "run",
                                daemon_env={"PATH": "/usr/bin"}, cache=open_cache(data))

    def build(self, dockerfile: str, context: Path, **kwargs: object) -> str:
        self.lines.clear()
        request = BuildInput(build_id="c1", dockerfile=dockerfile, context_dir=context,
                             **kwargs)  # type: ignore[arg-type]
        return build_image(request, self.env, self.lines.append, threading.Event())

    def misses(self) -> list[str]:
        return [line for line in self.lines if line.startswith("cache miss: ")]


def _top_layer(engine: CachedEngine, image_id: str) -> list[tarfile.TarInfo]:
    record = engine.store.lookup(image_id)
    with tarfile.open(engine.store.layer_blob_path(record.layers[-1].diff_id)) as tar:
        return tar.getmembers()


@pytest.fixture
def cengine(tmp_path: Path, busybox_tar: Path) -> Iterator[CachedEngine]:
    store = Store(tmp_path / "data")
    with ImportSource(busybox_tar) as src, StoreDestination(store, ["busybox:latest"]) as dst:
        copy_image(src, dst, lambda line: None)
    try:
        yield CachedEngine(tmp_path, store, [])
    finally:
        store.close()


DOCKERFILE = ("FROM busybox\n"
              "ARG V\n"
              "RUN echo ran-step-3 && mkdir /made && echo $V > /made/v && rm -rf /var && mkdir -p /var/new\n"
              "COPY src /src\n"
              "RUN echo ran-step-5 && cat /src/* > /made/all && rm -rf /etc/hostname /tmp\n"
              "ENV E=1\n")


def test_rebuild_hits_and_a_changed_file_misses_where_it_is_copied(cengine: CachedEngine) -> None:
    ctx = write(cengine.root / "ctx", {"src/a.c": "a\n", "src/b.c": "b\n", "junk.log": "x\n",
                                       ".dockerignore": "src/*.tmp\n"})
    first = cengine.build(DOCKERFILE, ctx, build_time=STATIC)
    assert "ran-step-3" in cengine.lines and "ran-step-5" in cengine.lines
    assert cengine.misses() == []  # a first build's log is as without a cache

    again = cengine.build(DOCKERFILE, ctx, build_time=STATIC)
    assert again == first
    assert cengine.lines.count(USING) == 5 and not cengine.misses()
    assert "ran-step-3" not in cengine.lines and "ran-step-5" not in cengine.lines

    (ctx / "src" / "x.tmp").write_text("ignored\n")   # .dockerignore'd: still a hit
    (ctx / "junk.log").write_text("not copied\n")     # not selected: still a hit
    assert cengine.build(DOCKERFILE, ctx, build_time=STATIC) == first
    assert cengine.lines.count(USING) == 5

    (ctx / "src" / "b.c").write_text("B\n")
    changed = cengine.build(DOCKERFILE, ctx, build_time=STATIC)
    assert changed != first
    assert "ran-step-3" not in cengine.lines and "ran-step-5" in cengine.lines
    assert cengine.misses() == ["cache miss: file src/b.c changed"]
    step4 = cengine.lines.index("STEP  4: COPY src /src")
    assert cengine.lines[step4 + 1] == "cache miss: file src/b.c changed"

    # The upper restored after step 3 had an opaque /var: the stage layer still has it.
    names = [m.name for m in _top_layer(cengine, changed)]
    assert "var/.wh..wh..opq" in names and ".wh.tmp" in names, " ".join(names)
    clean = cengine.build(DOCKERFILE, ctx, build_time=STATIC, no_cache=True)
    assert clean == changed
    assert USING not in cengine.lines
    assert "ran-step-3" in cengine.lines


def test_build_args_base_image_and_no_cache(cengine: CachedEngine) -> None:
    ctx = write(cengine.root / "ctx", {"src/a.c": "a\n"})
    first = cengine.build(DOCKERFILE, ctx, build_time=STATIC, build_args={"V": "1"})
    assert cengine.build(DOCKERFILE, ctx, build_time=STATIC,
                         build_args={"V": "1", "UNUSED": "x"}) == first
    assert cengine.lines.count(USING) == 5
    second = cengine.build(DOCKERFILE, ctx, build_time=STATIC, build_args={"V": "2"})
    assert second != first
    assert cengine.misses() == ["cache miss: build-arg V changed"]
    assert "ran-step-3" in cengine.lines
    # The same name now meaning another image: the first step misses, saying so.
    cengine.build("FROM busybox\nRUN echo x > /x\n", ctx, tag="busybox:latest",
                  build_time=STATIC)
    cengine.build(DOCKERFILE, ctx, build_time=STATIC, build_args={"V": "2"})
    assert cengine.misses() == ["cache miss: the base image busybox is now a different image"]


def test_cached_build_equals_clean_build_across_stages(cengine: CachedEngine) -> None:
    ctx = write(cengine.root / "ctx", {"f": "1\n"})
    dockerfile = ("FROM busybox AS one\n"
                  "RUN mkdir -p /d/e && echo 1 > /d/e/f && touch /d/g\n"
                  "RUN rm /d/g && rm -rf /usr/sbin\n"
                  "FROM one\n"
                  "COPY f /d/e/\n"
                  "RUN echo two >> /d/e/f\n"
                  "FROM busybox\n"
                  "COPY --from=1 /d /d\n"
                  "WORKDIR /w\n")
    first = cengine.build(dockerfile, ctx, build_time=STATIC)
    assert cengine.build(dockerfile, ctx, build_time=STATIC) == first
    assert cengine.lines.count(USING) == 6
    (ctx / "f").write_text("2\n")
    partly = cengine.build(dockerfile, ctx, build_time=STATIC)
    assert cengine.lines.count(USING) == 2
    assert cengine.misses() == ["cache miss: file f changed",
                                "cache miss: what it copies from (1) changed"]
    cengine.build(dockerfile + "RUN echo new\n", ctx, build_time=STATIC)
    assert cengine.misses() == ["cache miss: no earlier build ran this step"]
    assert cengine.build(dockerfile, ctx, build_time=STATIC, no_cache=True) == partly


def test_a_rebuild_without_build_static_keeps_the_image_id(cengine: CachedEngine) -> None:
    ctx = write(cengine.root / "ctx", {"f": "1\n"})
    first = cengine.build("FROM busybox\nRUN echo 1 > /one\nCOPY f /f\n", ctx)
    assert cengine.build("FROM busybox\nRUN echo 1 > /one\nCOPY f /f\n", ctx) == first


def _snapshot(cache: BuildCache, tmp_path: Path, name: str, size: int = 100) -> list[object]:
    """A step's upper dir adopted by the cache (held, as a build holds what it adopts)."""
    upper = tmp_path / name
    upper.mkdir()
    (upper / "f").write_text("x" * size)
    snapshot, path, on_disk = cache.adopt(upper)
    assert path == cache.snapshot_path(snapshot) and (path / "f").is_file()
    assert not upper.exists() and on_disk >= size
    return [snapshot, on_disk]


def test_entries_are_written_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    cache = BuildCache(tmp_path / "cache")
    entry = CacheEntry("sha256:k", "sha256:p", [], {}, None, {})

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the daemon dies between writing the tmp file and renaming

    for thread in threading.enumerate():   # earlier builds' seal() writes with os.rename too
        if thread.name == "cache-seal":
            thread.join()
    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.put(entry)
    monkeypatch.undo()
    assert cache.lookup("sha256:k") is None
    # Left by a killed daemon: a half-written file in tmp/, a snapshot no entry names.
    (tmp_path / "cache" / "tmp" / "half").write_bytes(b"{")
    orphan = _snapshot(cache, tmp_path, "orphan")
    reopened = BuildCache(tmp_path / "cache")
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    assert not reopened.snapshot_path(str(orphan[0])).exists()
    reopened.put(entry)
    assert reopened.lookup("sha256:k") == entry
    # An entry whose snapshot is gone is a miss, never served.
    reopened.put(CacheEntry("sha256:k", "sha256:p", [["ab" * 16, 1]], {}, None, {}))
    assert reopened.lookup("sha256:k") is None


def test_entries_a_power_loss_may_have_lost_are_dropped(tmp_path: Path) -> None:
    """Nothing is fsynced on a build's path: an entry written in an earlier boot after that
    boot's last seal (syncfs) may name a torn snapshot, so the next daemon drops it."""
    cache = BuildCache(tmp_path / "cache")
    kept = CacheEntry("sha256:old", "sha256:p", [_snapshot(cache, tmp_path, "a")], {}, None, {},
                      boot="earlier-boot", created=100.0)
    lost = CacheEntry("sha256:new", "sha256:p", [_snapshot(cache, tmp_path, "b")], {}, None, {},
                      boot="earlier-boot", created=300.0)
    same_boot = CacheEntry("sha256:now", "sha256:p", [_snapshot(cache, tmp_path, "c")], {},
                           None, {})
    for entry in (kept, lost, same_boot):
        cache.put(entry)
    (tmp_path / "cache" / "sealed.json").write_text(json.dumps({"earlier-boot": 200.0}))
    reopened = BuildCache(tmp_path / "cache")
    assert reopened.lookup("sha256:old") == kept
    assert reopened.lookup("sha256:now") == same_boot   # a killed daemon: the page cache holds it
    assert reopened.lookup("sha256:new") is None
    assert not reopened.snapshot_path(lost.snapshots[0]).exists()
    reopened.seal()
    assert json.loads((tmp_path / "cache" / "sealed.json").read_text())[BOOT_ID] > 0


def test_collect_evicts_least_recently_used_and_spares_snapshots_in_use(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "cache", max_size=10)
    chain = [_snapshot(cache, tmp_path, "u")]
    entry = CacheEntry("sha256:k", "sha256:p", chain, {}, None, {})
    cache.put(entry)
    below = CacheEntry("sha256:child", "sha256:k", chain, {}, None, {})
    cache.put(below)
    cache.collect()
    assert cache.lookup("sha256:k") == entry   # the build that adopted it still holds it
    cache.release([str(chain[0][0])])
    held = cache.lookup("sha256:k", hold=True)
    assert held == entry
    cache.collect()
    assert cache.snapshot_path(entry.snapshots[0]).exists()   # a build is about to mount it
    cache.release(held.snapshots)
    assert cache.collect() == chain[0][1]
    assert cache.lookup("sha256:k") is None and not cache.snapshot_path(entry.snapshots[0]).exists()
    # The entry below goes with it: no lookup could reach it without its parent.
    assert cache.lookup("sha256:child") is None and cache.usage() == []


def test_miss_reasons_name_what_differs() -> None:
    old = {"ins": "1", "text": "COPY . /", "args": {}, "files": {"a": "1", "b": "2", "c": "3"}}
    new = {**old, "files": {"a": "1", "b": "9", "c": "8", "d": "4"}}
    assert miss_reason(old, new, True) == "file b changed (and 2 others)"
    assert miss_reason(old, {**old, "ins": "2", "text": "COPY x /"}, True) == \
        "the instruction changed (the cached build ran: COPY . /)"


def test_client_and_daemon_use_the_cache_and_no_cache_skips_it(client, busybox_image: str,
                                                               tmp_path: Path) -> None:
    """Through the real client and daemon: the second build is served from the cache, and
    --no-cache (BuildRequest.noCache) runs every step again, to the same image."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo ran-e2e-$((1+1)) && echo $RANDOM > /r\n"
                                                 "COPY Dockerfile /d\n"})
    static = "build-time=2020-06-30 15:05:05"
    outputs, ids = [], []
    for n, flags in enumerate(([], [], ["--no-cache"])):
        iid = tmp_path / f"iid{n}"
        r = client("ctr-img", "build", "--build-static", static, "--iidfile", str(iid), *flags,
                   str(ctx))
        outputs.append(r.stdout)
        ids.append(iid.read_text().strip())
    assert "ran-e2e-2" in outputs[0] and USING not in outputs[0]
    assert outputs[1].count(USING) == 2 and "ran-e2e-2" not in outputs[1]
    assert "ran-e2e-2" in outputs[2] and USING not in outputs[2]
    assert ids[0] == ids[1]   # the RUN's $RANDOM output differs: the clean build's image too
    assert ids[2] != ids[1]


def test_prune_all_spares_held_snapshots_and_drops_dangling_and_empty_entries(
        tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "cache", max_size=10**9, max_age=10**10)
    chain = [_snapshot(cache, tmp_path, "u")]
    cache.release([str(chain[0][0])])
    held_entry = CacheEntry("sha256:held", "sha256:p", chain, {}, None, {"text": "RUN a"})
    cache.put(held_entry)
    cache.put(CacheEntry("sha256:meta", "sha256:p", [], {}, None, {"text": "ENV A=1"}))
    cache.put(CacheEntry("sha256:gone", "sha256:p", [["ab" * 16, 5]], {}, None, {}))
    for age, key in enumerate(("sha256:gone", "sha256:meta", "sha256:held")):
        cache._index[key].last_used = 1e9 - age
    assert [u.step for u in cache.usage()] == ["", "ENV A=1", "RUN a"]   # latest first
    assert cache.prune() == (1, 0)          # plain: only the dangling entry
    held = cache.lookup("sha256:held", hold=True)
    assert held is not None
    assert cache.prune(everything=True) == (1, 0)   # the metadata step; the held one stays
    assert [u.in_use for u in cache.usage()] == [True]
    cache.release(held.snapshots)
    size = cache.size()
    assert size > 100 and cache.prune(everything=True) == (1, size) and cache.size() == 0
    assert os.listdir(tmp_path / "cache" / "snapshots") == []
