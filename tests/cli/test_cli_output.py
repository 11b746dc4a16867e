"""How the client prints what the daemon sends: the images table, sizes, info, version."""

from __future__ import annotations

import pytest

from isula_build.api import control_pb2
from isula_build.cli.cache import format_cache_table
from isula_build.cli.images import EMPTY_TABLE, ImageRow, format_images_table
from isula_build.cli.info import format_info, format_size
from isula_build.cli.version import format_block
from isula_build.units import human_duration

ID_A = "35e9f3c93dad277d78f4c26c737e697a5c5e3157f4a962c9701b8ee3954579be"
ID_B = "a24bb4013296f61e89ba57005a7b3e52274d8edd3ae2077d04395f806b63d83e"


def test_images_table_as_gotabulate_simple_renders_it() -> None:
    rows = [
        ImageRow("busybox", "latest", ID_A, "2020-05-29 21:19:46", "2.13 MB"),
        ImageRow("<none>", "<none>", ID_B, "2020-05-30 08:00:00", "832 B"),
    ]
    rule = "---------------  -----------  -----------------  ------------------------  ------------"
    expected = "\n".join([
        rule,
        " REPOSITORY       TAG          IMAGE ID           CREATED                   SIZE       ",
        rule,
        " busybox          latest       35e9f3c93dad       2020-05-29 21:19:46       2.13 MB    ",
        "",
        " <none>           <none>       a24bb4013296       2020-05-30 08:00:00       832 B      ",
        rule,
        "",
    ])
    assert format_images_table(rows) == expected


def test_images_table_columns_grow_with_the_longest_cell() -> None:
    long_name = "localhost:5000/library/a-rather-long/repository-name"
    table = format_images_table([ImageRow(long_name, "v1", ID_A, "2020-05-29 21:19:46", "5.85 MB")])
    lines = table.splitlines()
    assert lines[0] == lines[2] == lines[-1]
    assert lines[0].split("  ")[0] == "-" * (len(long_name) + 5)
    assert lines[3].startswith(f" {long_name} ")
    # Every line is as wide as the rules: columns line up.
    assert {len(line) for line in lines} == {len(lines[0])}


def test_empty_images_table_is_the_originals() -> None:
    assert format_images_table([]) == EMPTY_TABLE
    assert EMPTY_TABLE.splitlines()[1].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED"]


@pytest.mark.parametrize("size,text", [
    (0, "0 B"), (832, "832 B"), (1000, "1 KB"), (5_850_000, "5.85 MB"), (1_000_000, "1 MB"),
    (2_129_920, "2.13 MB"), (7_630_000_000, "7.63 GB"), (999_999, "1e+03 KB"),
    (3 * 10 ** 15, "3e+03 TB"),
])
def test_sizes_use_powers_of_1000_and_three_digits(size: int, text: str) -> None:
    assert format_size(size) == text


def _info() -> control_pb2.InfoResponse:
    return control_pb2.InfoResponse(
        memInfo=control_pb2.MemData(memTotal=7_630_000_000, memFree=757_000_000,
                                    swapTotal=0, swapFree=0),
        storageInfo=control_pb2.StorageData(storageDriver="overlay", storageBackingFs="extfs"),
        registryInfo=control_pb2.RegistryData(registriesSearch=["docker.io"],
                                              registriesInsecure=["localhost:5000", "a.io"]),
        dataRoot="/var/lib/isula-build/", runRoot="/var/run/isula-build/", OCIRuntime="runc",
        builderNum=2, goRoutines=7, experimental=True, buildCacheSize=12_340_000,
        memStat=control_pb2.MemStat(memSys=68_400_000, heapSys=1, heapAlloc=2, heapInUse=3,
                                    heapIdle=4, heapReleased=5))


def test_info_layout() -> None:
    text = format_info(_info(), human_readable=True, verbose=False)
    assert text.splitlines() == [
        "General:",
        "  MemTotal:     7.63 GB",
        "  MemFree:      757 MB",
        "  SwapTotal:    0 B",
        "  SwapFree:     0 B",
        "  OCI Runtime:  runc",
        "  DataRoot:     /var/lib/isula-build/",
        "  RunRoot:      /var/run/isula-build/",
        "  Builders:     2",
        "  Threads:      7",
        "  Experimental: true",
        "Store:",
        "  Storage Driver:     overlay",
        "  Backing Filesystem: extfs",
        "  Build Cache:        12.3 MB",   # ours; the original's lines are unchanged
        "Registry:",
        "  Search Registries:",
        "    docker.io",
        "  Insecure Registries:",
        "    localhost:5000",
        "    a.io",
    ]


def test_info_raw_numbers_and_runtime_block() -> None:
    lines = format_info(_info(), human_readable=False, verbose=True).splitlines()
    assert "  MemTotal:     7630000000" in lines
    assert "  Build Cache:        12340000" in lines
    assert lines[-7:] == [
        "Runtime:",
        "  MemSys:           68400000",
        "  HeapSys:          1",
        "  HeapAlloc:        2",
        "  MemHeapInUse:     3",
        "  MemHeapIdle:      4",
        "  MemHeapReleased:  5",
    ]


def test_version_block() -> None:
    info = control_pb2.VersionResponse(version="0.9.6", goVersion="3.11.7", gitCommit="b82408f",
                                       buildTime="Tue Mar 30 11:08:00 2021", osArch="linux/amd64")
    assert format_block("Server", info).splitlines() == [
        "Server:",
        "  Version:        0.9.6",
        "  Python Version: 3.11.7",
        "  Git Commit:     b82408f",
        "  Built:          Tue Mar 30 11:08:00 2021",
        "  OS/Arch:        linux/amd64",
    ]


def test_cache_table_aligns_columns_cuts_ids_and_long_steps() -> None:
    now = 1_000_000.0
    rows = [("sha256:" + "ab" * 32, 123_456, now - 125, "RUN echo hi  &&\n  ls"),
            ("sha256:" + "cd" * 32, 0, now - 4000, "COPY " + "x" * 80 + " /")]
    assert format_cache_table(rows, 123_456, now).splitlines() == [
        "ID             SIZE     LAST USED           STEP",
        "abababababab   123 KB   2 minutes ago       RUN echo hi && ls",
        "cdcdcdcdcdcd   0 B      About an hour ago   COPY " + "x" * 52 + "...",
        "Total: 123 KB",
    ]
    assert format_cache_table([], 0, now) == "ID   SIZE   LAST USED   STEP\nTotal: 0 B\n"


@pytest.mark.parametrize("seconds,text", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (3599, "59 minutes"), (3600, "About an hour"), (47 * 3600, "47 hours"),
    (3 * 86400, "3 days"), (20 * 86400, "2 weeks"), (90 * 86400, "3 months"),
    (800 * 86400, "2 years"),
])
def test_human_duration_as_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
