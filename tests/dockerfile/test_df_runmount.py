"""RUN --mount values (dockerfile/runmount.py): BuildKit's grammar, defaults, expansion, and
the stages and images a mount's `from` adds to the plan."""

from __future__ import annotations

import pytest

from isula_build.dockerfile import DockerfileError, parse_dockerfile
from isula_build.dockerfile.instructions import RunInstruction
from isula_build.dockerfile.runmount import MountSpec, parse_mount, parse_ram_size


@pytest.mark.parametrize("text, expected", [
    ("target=/x", MountSpec(target="/x")),
    ("type=bind,src=a,dst=/x,rw", MountSpec(target="/x", source="a", readonly=False)),
    ("destination=/x,readwrite=true,readonly", MountSpec(target="/x", readonly=True)),
    ("type=CACHE,target=/c", MountSpec(type="cache", target="/c", readonly=False)),
    ("type=cache,target=/c,ro=1,id=go,sharing=LOCKED,mode=0700,uid=1,gid=2,from=s,source=/p",
     MountSpec(type="cache", target="/c", readonly=True, id="go", sharing="locked", mode=0o700,
               uid=1, gid=2, from_="s", source="/p")),
    ("type=tmpfs,target=/t,size=64m", MountSpec(type="tmpfs", target="/t", readonly=False,
                                                size=64 << 20)),
    ("type=secret,id=tok,required,env=TOKEN", MountSpec(type="secret", id="tok", required=True,
                                                       env="TOKEN")),
    ("type=ssh", MountSpec(type="ssh")),
    ('"target=/a,b",type=bind', MountSpec(target="/a,b")),
])
def test_parse_mount(text: str, expected: MountSpec) -> None:
    assert parse_mount(text, 1) == expected


def test_defaults_the_executor_reads() -> None:
    cache = parse_mount("type=cache,target=/root/.cache/", 1)
    assert cache.cache_id == "/root/.cache" and cache.sharing == "shared"
    assert parse_mount("target=src", 1).container_target("/app") == "/app/src"
    assert parse_mount("target=//abs/", 1).container_target("/app") == "/abs"


def test_secret_and_ssh_defaults_are_buildkits() -> None:
    def mount(text: str) -> MountSpec:
        return parse_mount(text, 1)

    assert mount("type=secret,id=tok").secret_file == "/run/secrets/tok"
    assert mount("type=secret,id=a/b").secret_file == "/run/secrets/b"
    assert mount("type=secret,source=tok").secret_id == "tok"        # source: id's old name
    assert mount("type=secret,target=/etc/pw").secret_id == "pw"     # no id: the target's name
    assert mount("type=secret,id=tok,env=TOK").secret_file is None  # env= alone: no file
    assert mount("type=secret,id=tok,env=TOK,target=/t").secret_file == "/t"
    assert mount("type=ssh").ssh_id == "default" and mount("type=ssh,id=git").ssh_id == "git"


@pytest.mark.parametrize("value, size", [("4096", 4096), ("1k", 1024), ("1KiB", 1024),
                                         ("2 g", 2 << 30), ("1.5m", 3 << 19)])
def test_tmpfs_sizes_are_binary_as_go_units_reads_them(value: str, size: int) -> None:
    assert parse_ram_size(value) == size


def test_values_expand_with_the_stage_environment_and_are_checked_after() -> None:
    plan = parse_dockerfile("FROM busybox\nARG DIR=/cache\nARG ID=a,b\n"
                            "RUN --mount=type=cache,target=$DIR,id=$ID make\n", {})
    run = plan.stages[0].settled[-1]
    assert isinstance(run, RunInstruction)
    assert parse_mount(run.mounts[0], run.line) == MountSpec(type="cache", target="/cache",
                                                             id="a,b", readonly=False)
    with pytest.raises(DockerfileError, match=r"line 3: .*unsupported mount type 'volume'"):
        parse_dockerfile("FROM busybox\nARG T=volume\nRUN --mount=type=$T,target=/x make\n", {})


def test_mount_from_adds_the_stage_or_image_to_the_plan() -> None:
    plan = parse_dockerfile("FROM busybox AS tools\nFROM busybox AS other\nFROM busybox\n"
                            "RUN --mount=from=tools,target=/t --mount=from=alpine,target=/a "
                            "--mount=type=tmpfs,from=other,target=/x true\n", {})
    assert plan.stages[2].deps == {0} and plan.stages[2].images == ("busybox", "alpine")
    assert plan.needed() == [0, 2]


@pytest.mark.parametrize("flag, message", [
    ("--mount=", "failed to parse csv mounts"),
    ("--mount='\"target=/x'", "failed to parse csv mounts"),
    ("--mount=target=/x,shared", "invalid field 'shared' must be a key=value pair"),
    ("--mount=type=bind,target=/x,required", "unexpected key 'required' for mount type 'bind'"),
    ("--mount=type=bind,target=/x,sharing=locked", "invalid cache sharing set for bind mount"),
    ("--mount=type=tmpfs,target=/x,uid=0", "uid not allowed for 'tmpfs' type mounts"),
    ("--mount=type=cache,target=/x,mode=0999", "invalid value 0999 for mode"),
    ("--mount=type=cache,target=/x,gid=4294967296", "invalid value 4294967296 for gid"),
    ("--mount=type=secret,from=a,id=x", "secret mount should not have a from"),
    ("--mount=type=secret", "one of source, target required"),
    ("--mount=type=secret,source=a,id=b", "both source and id can't be set"),
    ("--mount=type=tmpfs,target=//", 'invalid mount target "//"'),
    ("--mount=type=secret,id=x,env=A=B", "invalid value for env: 'A=B' is no variable name"),
    ("--mount=type=ssh,source=/s", "ssh does not support source"),
    ("--mount=type=ssh,from=a", "ssh mount should not have a from"),
    ("--mount=type=,target=/x", "unsupported mount type ''"),
])
def test_bad_mounts_name_the_line(flag: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile(f"FROM busybox\nRUN true\nRUN {flag} true\n", {})
    assert err.value.line == 3 and message in str(err.value)
