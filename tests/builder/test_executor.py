"""The build engine driven directly (builder.build_image on a Store in tmp_path): RUN, COPY,
metadata, commit, multi-stage, static builds, outputs to archives, and bad input leaving
nothing behind. The same paths through the real daemon and client are in test_build_e2e.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from isula_build.builder.builder import BuildEnvironment, BuildInput, build_image
from isula_build.builder.outputs import parse_output
from isula_build.builder.workdir import sweep_stale_builds
from isula_build.errors import Cancelled, InvalidArgument, IsulaBuildError
from isula_build.store import Store
from isula_build.store.fsutil import delete_tree
from isula_build.transports.copy import copy_image
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination

STATIC = datetime(2020, 6, 30, 15, 5, 5, tzinfo=timezone.utc)


@dataclass
class Engine:
    """A store with busybox:latest, and a way to build against it."""

    root: Path
    store: Store
    busybox_id: str
    lines: list[str] = field(default_factory=list)

    @property
    def env(self) -> BuildEnvironment:
        return BuildEnvironment(store=self.store, data_root=self.root / "data",
                                run_root=self.root / "run",
                                daemon_env={"http_proxy": "http://proxy.example:3128",
                                            "PATH": "/usr/bin"})

    def build(self, dockerfile: str, context: Path | None = None, **kwargs: object) -> str:
        self.lines.clear()
        cancel = kwargs.pop("cancel", None) or threading.Event()
        if context is None:
            context = self.root / "ctx"
            context.mkdir(exist_ok=True)
        request = BuildInput(build_id=kwargs.pop("build_id", "b1"),  # type: ignore[arg-type]
                             dockerfile=dockerfile, context_dir=context, **kwargs)  # type: ignore[arg-type]
        return build_image(request, self.env, self.lines.append, cancel)  # type: ignore[arg-type]

    def config(self, image_id: str) -> dict:
        return json.loads(self.store.config_bytes(image_id))

    def layer_names(self, image_id: str, index: int = -1) -> list[str]:
        record = self.store.lookup(image_id)
        with tarfile.open(self.store.layer_blob_path(record.layers[index].diff_id)) as tar:
            return tar.getnames()

    def leftovers(self) -> list[str]:
        """Work dirs, mounts and runc containers a build may have left."""
        tmp = self.root / "data" / "tmp"
        found = [str(p) for p in tmp.iterdir()] if tmp.is_dir() else []
        with open("/proc/self/mountinfo") as f:
            found += [line.split()[4] for line in f if str(self.root) in line.split()[4]]
        state = self.root / "run" / "runc"
        if state.is_dir():
            out = subprocess.run(["runc", "--root", str(state), "list", "-q"],
                                 capture_output=True, text=True, check=True).stdout
            found += out.split()
        return found


@pytest.fixture
def engine(tmp_path: Path, busybox_tar: Path) -> Iterator[Engine]:
    store = Store(tmp_path / "data")
    with ImportSource(busybox_tar) as src, StoreDestination(store, ["busybox:latest"]) as dst:
        image_id = copy_image(src, dst, lambda line: None)
    try:
        yield Engine(tmp_path, store, image_id)
    finally:
        store.close()


def write(context: Path, files: dict[str, str]) -> Path:
    context.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = context / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return context


# --- RUN, COPY, metadata, commit ------------------------------------------------------------


def test_run_and_copy_make_one_layer_with_step_lines(engine: Engine) -> None:
    ctx = write(engine.root / "ctx", {"hello.txt": "hello\n", "sub/a.txt": "a\n"})
    image_id = engine.build(
        "FROM busybox\n"
        "RUN echo from-run && mkdir /made\n"
        "COPY hello.txt /made/\n"
        "COPY sub /sub\n"
        "RUN cat /made/hello.txt > /made/copy\n", ctx, tag="isb-test-out:1")
    assert engine.lines[0] == "STEP  1: FROM busybox"
    assert "STEP  2: RUN echo from-run && mkdir /made" in engine.lines
    assert "from-run" in engine.lines
    assert engine.lines.index("from-run") > engine.lines.index("STEP  2: RUN echo from-run && mkdir /made")
    assert "STEP  5: RUN cat /made/hello.txt > /made/copy" in engine.lines
    layers = engine.store.lookup(image_id).layers
    assert engine.lines[-8:] == ["Getting image source signatures",
                                 *[f"Copying blob {l.diff_id}" for l in layers],
                                 f"Copying config sha256:{image_id}",
                                 "Writing manifest to image destination", "Storing signatures",
                                 f"Committed stage 0 with ID: {image_id}",
                                 f"Build success with image id: {image_id}"]
    record = engine.store.lookup("isb-test-out:1")
    assert record.id == image_id
    assert len(record.layers) == 2  # busybox + one layer for the whole stage
    names = engine.layer_names(image_id)
    assert {"made", "made/hello.txt", "made/copy", "sub", "sub/a.txt"} <= set(names)
    # RUN's mount-point stubs and unchanged copied-up dirs never reach the layer.
    assert not any(n.startswith(("etc", "proc", "sys", "dev")) for n in names)
    config = engine.config(image_id)
    history = config["history"]
    assert history[-1]["created_by"] == "RUN /bin/sh -c cat /made/hello.txt > /made/copy # buildkit"
    assert [h.get("empty_layer", False) for h in history[-4:]] == [True, True, True, False]
    assert sum(1 for h in history if not h.get("empty_layer")) == len(config["rootfs"]["diff_ids"])


def test_metadata_instructions_written_as_docker_does(engine: Engine) -> None:
    image_id = engine.build(
        "FROM busybox\n"
        "LABEL a=1 \"b c\"=2\n"
        "ENV A=1 B=\"two words\"\n"
        "ENV A=3\n"
        "EXPOSE 80 53/udp\n"
        "VOLUME /data /logs\n"
        "USER nobody\n"
        "WORKDIR /app\n"
        "WORKDIR sub\n"
        "STOPSIGNAL SIGKILL\n"
        "HEALTHCHECK --interval=5s --retries=3 CMD true\n"
        "SHELL [\"/bin/sh\", \"-ec\"]\n"
        "ONBUILD RUN echo triggered\n"
        "MAINTAINER someone@example.com\n"
        "ENTRYPOINT [\"/bin/echo\"]\n"
        "CMD hi\n")
    config = engine.config(image_id)
    c = config["config"]
    assert c["Labels"] == {"a": "1", "b c": "2"}
    assert c["Env"][-2:] == ["A=3", "B=two words"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}, "/logs": {}}
    assert c["User"] == "nobody"
    assert c["WorkingDir"] == "/app/sub"
    assert c["StopSignal"] == "SIGKILL"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 3}
    assert c["Shell"] == ["/bin/sh", "-ec"]
    assert c["OnBuild"] == ["RUN echo triggered"]
    assert c["Entrypoint"] == ["/bin/echo"]
    assert c["Cmd"] == ["/bin/sh", "-ec", "hi"]
    assert config["author"] == "someone@example.com"
    # WORKDIR made its directory (owned by the USER), so the stage has a layer.
    assert "app/sub" in engine.layer_names(image_id)
    by = [h.get("created_by") for h in config["history"]]
    assert "EXPOSE map[53/udp:{} 80/tcp:{}]" in by
    assert "CMD [\"/bin/sh\" \"-ec\" \"hi\"]" in by
    assert all(h["comment"] == "buildkit.dockerfile.v0" for h in config["history"][1:])


def test_metadata_only_stage_adds_no_layer(engine: Engine) -> None:
    image_id = engine.build("FROM busybox\nENV X=1\nCMD [\"sh\"]\n")
    record = engine.store.lookup(image_id)
    assert [l.diff_id for l in record.layers] == \
        [l.diff_id for l in engine.store.lookup(engine.busybox_id).layers]
    assert all(h.get("empty_layer") for h in engine.config(image_id)["history"][1:])


def test_entrypoint_resets_inherited_cmd_and_onbuild_triggers_run(engine: Engine) -> None:
    base = engine.build("FROM busybox\nCMD [\"sh\"]\nONBUILD RUN echo trig > /trig\n",
                        tag="isb-test-base:1")
    child = engine.build("FROM isb-test-base:1\nENTRYPOINT [\"/bin/true\"]\n", build_id="b2")
    c = engine.config(child)["config"]
    assert "Cmd" not in c
    assert "OnBuild" not in c  # triggers run once, not inherited
    assert "trig" in engine.layer_names(child)
    assert engine.config(base)["config"]["Cmd"] == ["sh"]


def test_run_env_args_proxy_and_user(engine: Engine) -> None:
    image_id = engine.build(
        "FROM busybox\n"
        "ARG V=from-arg\n"
        "ENV E=from-env\n"
        "RUN echo \"$V $E $http_proxy $(id -u)\" > /out\n"
        "USER nobody\n"
        "RUN id -u > /tmp/uid\n", build_args={"V": "given"})
    config = engine.config(image_id)
    assert not any(e.startswith(("V=", "http_proxy")) for e in config["config"]["Env"])
    tar_path = engine.store.layer_blob_path(engine.store.lookup(image_id).layers[-1].diff_id)
    with tarfile.open(tar_path) as tar:
        out = tar.extractfile("out").read().decode()  # type: ignore[union-attr]
        uid = tar.extractfile("tmp/uid").read().decode()  # type: ignore[union-attr]
    assert out == "given from-env http://proxy.example:3128 0\n"
    assert uid == "65534\n"
    assert "RUN |1 V=given /bin/sh -c echo" in config["history"][-3]["created_by"]


def test_proxy_false_and_arg_override(engine: Engine) -> None:
    image_id = engine.build("FROM busybox\nRUN echo \"[$http_proxy]\" > /p\n", proxy=False)
    assert _file(engine, image_id, "p") == "[]\n"
    image_id = engine.build("FROM busybox\nRUN echo \"[$http_proxy]\" > /p\n",
                            build_args={"http_proxy": "http://mine:1"}, build_id="b2")
    assert _file(engine, image_id, "p") == "[http://mine:1]\n"


def test_last_writer_of_env_and_arg_wins(engine: Engine) -> None:
    # BuildKit keeps one environment: ENV Y then ARG Y makes RUN (and heredocs) see the ARG
    # value, ARG W then ENV W the ENV value; the config keeps the ENV values. Heredocs expand
    # only declared names: a proxy build arg without ARG reaches RUN but not the document.
    image_id = engine.build(
        "FROM busybox\n"
        "ENV Y=from-env\n"
        "ARG Y=from-arg\n"
        "ARG W=from-arg\n"
        "ENV W=from-env\n"
        "ARG https_proxy\n"
        "RUN echo \"$Y $W $http_proxy $https_proxy\" > /run.txt\n"
        "COPY <<EOF /doc.txt\n$Y $W [$http_proxy] [$https_proxy]\nEOF\n",
        build_args={"http_proxy": "http://undeclared:1", "https_proxy": "http://declared:2"})
    assert _file(engine, image_id, "run.txt") == \
        "from-arg from-env http://undeclared:1 http://declared:2\n"
    assert _file(engine, image_id, "doc.txt") == "from-arg from-env [] [http://declared:2]\n"
    env = engine.config(image_id)["config"]["Env"]
    assert "Y=from-env" in env and "W=from-env" in env
    assert not any(e.startswith(("http_proxy=", "https_proxy=")) for e in env)


def test_bare_arg_writes_only_with_a_value(engine: Engine) -> None:
    # `ARG V` after `ENV V` changes nothing unless a build arg or global ARG gives it a value.
    dockerfile = ("ARG G=global\nFROM busybox\nENV V=env G=env\nARG V\nARG G\n"
                  "RUN echo \"$V $G\" > /v\n")
    assert _file(engine, engine.build(dockerfile), "v") == "env global\n"
    image_id = engine.build(dockerfile, build_args={"V": "given"}, build_id="b2")
    assert _file(engine, image_id, "v") == "given global\n"


def _file(engine: Engine, image_id: str, name: str) -> str:
    record = engine.store.lookup(image_id)
    with tarfile.open(engine.store.layer_blob_path(record.layers[-1].diff_id)) as tar:
        return tar.extractfile(name).read().decode()  # type: ignore[union-attr]


def test_dockerignore_and_chown_chmod(engine: Engine) -> None:
    ctx = write(engine.root / "ctx", {"keep.txt": "k", "skip.log": "s", ".dockerignore": "*.log\n"})
    image_id = engine.build("FROM busybox\nCOPY --chown=nobody:nogroup --chmod=600 . /c/\n", ctx)
    record = engine.store.lookup(image_id)
    with tarfile.open(engine.store.layer_blob_path(record.layers[-1].diff_id)) as tar:
        names = tar.getnames()
        keep = tar.getmember("c/keep.txt")
    assert "c/keep.txt" in names and "c/skip.log" not in names
    assert (keep.uid, keep.gid, keep.mode) == (65534, 65534, 0o600)


# --- multi-stage ----------------------------------------------------------------------------


def test_multi_stage_copy_from_stage_index_and_image(engine: Engine) -> None:
    image_id = engine.build(
        "FROM busybox AS builder\n"
        "RUN echo built > /artifact\n"
        "FROM scratch\n"
        "COPY --from=builder /artifact /a1\n"
        "COPY --from=0 /artifact /a2\n"
        "COPY --from=busybox /bin/busybox /busybox\n",
        tag="isb-test-multi:1")
    assert "STEP  3: FROM scratch" in engine.lines
    record = engine.store.lookup(image_id)
    assert len(record.layers) == 1
    assert sorted(engine.layer_names(image_id)) == ["a1", "a2", "busybox"]
    # Only the last stage is an image; nothing of the first stage remains.
    assert {i.id for i in engine.store.list_images()} == {engine.busybox_id, image_id}
    assert engine.leftovers() == []


def test_from_earlier_stage_keeps_its_layer(engine: Engine) -> None:
    image_id = engine.build(
        "FROM busybox AS one\nRUN echo 1 > /one\n"
        "FROM one\nRUN cat /one > /two\n")
    record = engine.store.lookup(image_id)
    assert len(record.layers) == 3
    assert engine.layer_names(image_id, 1) == ["one"]
    assert engine.layer_names(image_id, 2) == ["two"]
    assert _file(engine, image_id, "two") == "1\n"


def test_only_needed_stages_run_and_steps_count_all(engine: Engine) -> None:
    engine.build("FROM busybox AS unused\nRUN exit 3\nFROM busybox\nRUN true\n")
    assert engine.lines[0] == "STEP  3: FROM busybox"
    assert "STEP  4: RUN true" in engine.lines


# --- static builds --------------------------------------------------------------------------


def test_static_build_is_reproducible(engine: Engine, tmp_path: Path) -> None:
    ctx = write(tmp_path / "sctx", {"f.txt": "x"})
    dockerfile = "FROM busybox\nCOPY f.txt /f\nRUN date > /d1; hostname > /h; touch /t\n"
    ids, archives = [], []
    for n, umask in enumerate((0o022, 0o077)):
        old = os.umask(umask)
        try:
            os.utime(ctx / "f.txt", (time.time() - n * 1000, time.time() - n * 1000))
            out = tmp_path / f"out{n}.tar"
            ids.append(engine.build(dockerfile.replace("date", "echo same"), ctx,
                                    build_id=f"s{n}", build_time=STATIC,
                                    output=f"docker-archive:{out}:isb-test-static:1"))
            archives.append(out.read_bytes())
        finally:
            os.umask(old)
        engine.store.remove(ids[-1])
    assert ids[0] == ids[1]
    assert archives[0] == archives[1]
    config = json.loads(_member(tmp_path / "out0.tar", f"{ids[0]}.json"))
    assert config["created"] == "2020-06-30T15:05:05Z"
    assert all(h["created"] == "2020-06-30T15:05:05Z" for h in config["history"][1:])


def _member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        return tar.extractfile(name).read()  # type: ignore[union-attr]


# --- outputs --------------------------------------------------------------------------------


def test_output_archives(engine: Engine, tmp_path: Path) -> None:
    docker_out, oci_out = tmp_path / "d.tar", tmp_path / "o.tar"
    image_id = engine.build("FROM busybox\nRUN touch /x\n",
                            output=f"docker-archive:{docker_out}:isb-test-o:1")
    manifest = json.loads(_member(docker_out, "manifest.json"))
    assert manifest[0]["RepoTags"] == ["isb-test-o:1"]
    assert manifest[0]["Config"] == f"{image_id}.json"
    engine.build("FROM busybox\nRUN touch /x\n", output=f"oci-archive:{oci_out}:isb-test-o:2",
                 build_id="b2")
    index = json.loads(_member(oci_out, "index.json"))
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "isb-test-o:2"


@pytest.mark.parametrize("spec, error", [
    ("docker://registry.example/a:1", "needs the daemon's registry settings"),
    ("oci://registry.example/a:1", "needs the daemon's registry settings"),
    ("docker://app:1", "does not name a registry"),
    ("oci://", "use oci://REGISTRY/REPO:TAG"),
    ("docker-archive:relative.tar:a:1", "must be absolute"),
    ("nope:thing", "transport 'nope' not support"),
    ("docker-daemon:UPPER:1", "invalid output"),
    ("docker-daemon:nametag", "use docker-daemon:NAME:TAG"),
    ("docker-archive", "destination should not be empty"),
    ("isulad:Reg.IO/App:1", "repository name must be lowercase"),
])
def test_bad_output_refused_before_building(engine: Engine, spec: str, error: str) -> None:
    with pytest.raises(IsulaBuildError, match=error.replace("(", r"\(").replace(")", r"\)")):
        engine.build("FROM busybox\nRUN touch /never\n", output=spec)
    assert not any(l.startswith("STEP") for l in engine.lines)
    assert len(engine.store.list_images()) == 1


def test_daemon_output_parse_resolves_archive_paths(tmp_path: Path) -> None:
    from isula_build.transports.reference import DockerArchiveRef, IsuladRef

    assert parse_output("") is None
    assert parse_output(f"docker-archive:{tmp_path}/sub/../a.tar:Reg.IO:5000/app") == \
        DockerArchiveRef(f"{tmp_path}/a.tar", "Reg.IO:5000/app:latest")
    assert parse_output("isulad:Reg.IO/app:V1") == IsuladRef("Reg.IO/app:V1")


# --- bad input: clear error, nothing left behind --------------------------------------------


@pytest.mark.parametrize("dockerfile, files, error", [
    ("FROM busybox\nRUN echo out; exit 7\n", {}, "returned a non-zero code: 7"),
    ("FROM busybox\nCOPY missing.txt /\n", {}, "line 2"),
    ("FROM busybox\nCOPY ../escape /\n", {}, "outside the build context"),
    ("FROM busybox\nCOPY --from=nostage /x /\n", {}, "not found in the local store"),
    ("FROM isb-test-absent:1\n", {}, 'base image "isb-test-absent:1" not found'),
    ("FROM busybox\nRUN true\nFROM busybox\nCOPY --from=5 /x /\n", {}, "invalid stage index"),
])
def test_bad_input_leaves_nothing(engine: Engine, dockerfile: str, files: dict[str, str],
                                  error: str) -> None:
    ctx = write(engine.root / "ctx", files)
    with pytest.raises(IsulaBuildError, match=error):
        engine.build(dockerfile, ctx, tag="isb-test-bad:1")
    assert [i.id for i in engine.store.list_images()] == [engine.busybox_id]
    assert engine.leftovers() == []


def test_dockerfile_over_one_mib_refused(engine: Engine) -> None:
    with pytest.raises(InvalidArgument, match="1 MiB"):
        engine.build("FROM busybox\n" + "# x\n" * 300_000)
    assert engine.leftovers() == []


WRITE_ONLY_SYSFS_FILE = Path("/sys/bus/pci/rescan")  # open for reading fails, even for root


def test_unreadable_context_file(engine: Engine) -> None:
    # The daemon runs as root, which reads any mode-000 file; a write-only sysfs attribute
    # bind-mounted into the context cannot be read by anyone.
    ctx = write(engine.root / "ctx", {"ok.txt": "fine", "secret": ""})
    subprocess.run(["mount", "--bind", str(WRITE_ONLY_SYSFS_FILE), str(ctx / "secret")], check=True)
    try:
        with pytest.raises(InvalidArgument, match="Dockerfile line 2: cannot read .*secret"):
            engine.build("FROM busybox\nCOPY . /c/\n", ctx, tag="isb-test-bad:1")
    finally:
        subprocess.run(["umount", str(ctx / "secret")], check=True)
    assert [i.id for i in engine.store.list_images()] == [engine.busybox_id]
    assert engine.leftovers() == []


def test_cancel_kills_run_and_cleans_up(engine: Engine) -> None:
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        engine.build("FROM busybox\nRUN sleep 60\n", cancel=cancel)
    assert time.monotonic() - started < 20
    assert engine.leftovers() == []
    assert len(engine.store.list_images()) == 1


def test_sweep_stale_builds(engine: Engine) -> None:
    stale = engine.root / "data" / "tmp" / "build-dead"
    (stale / "stage0" / "upper").mkdir(parents=True)
    removed = sweep_stale_builds(engine.root / "data")
    assert removed == [stale]
    assert not stale.exists()


def test_sweep_stale_builds_removes_archives_handed_to_engines(engine: Engine) -> None:
    # A daemon killed while docker or isulad loaded the archive of `build -o docker-daemon:`
    # or `-o isulad:` leaves it in <data_root>/tmp.
    tmp = engine.root / "data" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    handed = [tmp / "docker-daemon-0123.tar", tmp / "isulad-4567.tar"]
    for path in handed:
        path.write_bytes(b"an archive")
    assert sorted(sweep_stale_builds(engine.root / "data")) == sorted(handed)
    assert not any(path.exists() for path in handed)


def test_oci_format_drops_docker_only_fields(engine: Engine) -> None:
    image_id = engine.build("FROM busybox\nHEALTHCHECK CMD true\nSHELL [\"/bin/sh\", \"-c\"]\n",
                            image_format="oci")
    config = engine.config(image_id)["config"]
    assert "Healthcheck" not in config and "Shell" not in config
    assert any("Healthcheck is not supported by the OCI image format" in l for l in engine.lines)


def test_heredocs_and_empty_exec_forms(engine: Engine) -> None:
    image_id = engine.build(
        "FROM busybox\n"
        "ARG WHO=world\n"
        "COPY <<-EOT /greeting\n\thello ${WHO}\n\tEOT\n"
        "RUN <<EOF\necho ran > /ran\nEOF\n"
        "RUN cat <<EOF > /cat\nvia cat\nEOF\n"
        "CMD []\n")
    assert _file(engine, image_id, "greeting") == "hello world\n"
    assert _file(engine, image_id, "ran") == "ran\n"
    assert _file(engine, image_id, "cat") == "via cat\n"
    assert "Cmd" not in engine.config(image_id)["config"]


# --- long Dockerfiles ------------------------------------------------------------------------


def _env_and_arg_lines(count: int) -> str:
    return "FROM scratch\n" + "".join(f"ENV V{i}={i}\nARG W{i}={i}\n" for i in range(count))


def _lines_run(engine: Engine, dockerfile: str) -> int:
    """How many lines of isula_build's code a build runs: a measure of its work, free of
    the machine's speed."""
    count = 0

    def trace(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal count
        if "isula_build" not in frame.f_code.co_filename:
            return None
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        engine.build(dockerfile, build_id=f"lines{len(dockerfile)}")
    finally:
        sys.settrace(None)
    return count


def test_env_and_arg_lines_cost_linear_work(engine: Engine) -> None:
    # Replacing an Env entry by walking the list, or walking every ARG in scope at each step,
    # made a Dockerfile of N ENV or ARG lines quadratic (30,000 ENV lines took 44 s).
    small = _lines_run(engine, _env_and_arg_lines(400))
    large = _lines_run(engine, _env_and_arg_lines(800))
    assert large < 2.6 * small, (small, large)


def test_five_thousand_env_lines_build(engine: Engine) -> None:
    image_id = engine.build("FROM busybox\n" + "".join(f"ENV V{i}=v{i}\n" for i in range(5000))
                            + "ENV V0=again\nRUN test \"$V4999\" = v4999 && test \"$V0\" = again\n")
    config = engine.config(image_id)
    env = config["config"]["Env"]
    assert env[1:] == ["V0=again", *(f"V{i}=v{i}" for i in range(1, 5000))]
    assert env[0].startswith("PATH=")
    assert len(config["history"]) == 1 + 5002
    steps = [line for line in engine.lines if line.startswith("STEP ")]
    assert steps[1] == "STEP  2: ENV V0=v0" and steps[-1].startswith("STEP 5003: RUN test")


def test_run_making_a_tree_deeper_than_the_recursion_limit_commits(engine: Engine) -> None:
    ctx = engine.root / "ctx"
    path = ctx / "tree"
    for _ in range(1500):
        path = path / "d"
        path.mkdir(parents=True)
    try:
        _build_deep_tree(engine, ctx)
    finally:  # pytest's own clean-up of old tmp dirs (shutil.rmtree) cannot remove these
        delete_tree(ctx / "tree")
        for doomed in engine.store.layout.tmp.iterdir():  # the work dir's removal waits 35 s
            delete_tree(doomed, ignore_errors=True)


def _build_deep_tree(engine: Engine, ctx: Path) -> None:
    image_id = engine.build(
        "FROM busybox\n"
        "RUN i=0; while [ $i -lt 1500 ]; do mkdir d; cd d; i=$((i+1)); done; echo x > f\n"
        "COPY tree /copied\n"
        "RUN find / -name f | wc -l > /count && ls /copied/d/d > /copied-ls\n", ctx)
    names = engine.layer_names(image_id)
    assert "/".join(["d"] * 1500) + "/f" in names
    assert "copied/" + "/".join(["d"] * 1500) in names
    assert "count" in names and "copied-ls" in names
    assert engine.leftovers() == []
