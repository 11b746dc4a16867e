"""CacheList, CachePrune and InfoResponse.buildCacheSize (this project's own wire), through the
generated stubs alone."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from isula_build.api import control_pb2 as pb

from tests.daemon.test_build_stream import build

DOCKERFILE = ("FROM busybox\n"
              "RUN head -c 300000 /dev/zero > /big\n"
              "RUN head -c 100000 /dev/zero > /small\n"
              "ENV DONE=1\n")


def _filled(stub, tmp_path: Path) -> pb.CacheListResponse:
    for n in (1, 2):
        lines, answer = build(stub, tmp_path, f"cacherpc{n}", DOCKERFILE)
        assert isinstance(answer, pb.BuildResponse), answer
    assert " ---> Using cache" in lines
    return stub.CacheList(pb.CacheListRequest())


def test_list_shows_each_step_with_its_size_and_info_the_total(stub, busybox_image: str,
                                                               tmp_path: Path) -> None:
    listing = _filled(stub, tmp_path)
    by_step = {e.step: e for e in listing.entries}
    assert set(by_step) == {"RUN head -c 300000 /dev/zero > /big",
                            "RUN head -c 100000 /dev/zero > /small", "ENV DONE=1"}
    big, small = (by_step[f"RUN head -c {n} /dev/zero > /{name}"].size
                  for n, name in ((300000, "big"), (100000, "small")))
    # A step's size is the snapshot it added (its own upper dir), not the stage's state.
    assert 300000 < big and 100000 < small < big
    assert by_step["ENV DONE=1"].size == 0       # a metadata step adds no snapshot
    assert listing.totalSize == big + small
    assert all(e.id.startswith("sha256:") and not e.inUse for e in listing.entries)
    assert all(abs(e.lastUsed.seconds - time.time()) < 600 for e in listing.entries)
    assert stub.Info(pb.InfoRequest()).buildCacheSize == listing.totalSize


def test_prune_forms(stub, busybox_image: str, tmp_path: Path) -> None:
    listing = _filled(stub, tmp_path)
    # Plain: nothing is dangling or past the configured limits.
    assert stub.CachePrune(pb.CachePruneRequest()).entriesRemoved == 0
    # keepStorage: the least recently used (the first RUN's) goes, the last steps' blob fits.
    keep = listing.totalSize - 1
    pruned = stub.CachePrune(pb.CachePruneRequest(keepStorage=keep))
    after = stub.CacheList(pb.CacheListRequest())
    assert 0 < after.totalSize <= keep
    assert pruned.spaceReclaimed == listing.totalSize - after.totalSize
    assert pruned.entriesRemoved == len(listing.entries) - len(after.entries) > 0
    # all: nothing is left, metadata-only steps included.
    pruned = stub.CachePrune(pb.CachePruneRequest(all=True))
    assert pruned.entriesRemoved == len(after.entries)
    assert pruned.spaceReclaimed == after.totalSize
    empty = stub.CacheList(pb.CacheListRequest())
    assert list(empty.entries) == [] and empty.totalSize == 0
    assert stub.Info(pb.InfoRequest()).buildCacheSize == 0


def test_negative_keep_storage_is_refused(stub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.CachePrune(pb.CachePruneRequest(keepStorage=-1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "keep-storage must not be negative" in err.value.details()
