"""RUN --mount=type=secret and type=ssh through the real client and daemon, runc and busybox:
what RUN sees (file, mode, owner, env=, the forwarded agent's keys), and that a secret's value
reaches nothing else — not the image's layers, config or history, not the daemon's log at debug
level, not a file of the data root or the run root (while the RUN runs too), not the cache —
that a changed secret is served from the cache (BuildKit's rule), and the errors."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.test_build_e2e import context, image_ids, leftovers
from tests.builder.test_run_mounts_e2e import USING, build, top_layer


def sha(value: str) -> bytes:
    return hashlib.sha256(value.encode()).hexdigest().encode() + b"\n"


def tmpfs_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split(" - ")[1].startswith("tmpfs ")]


def files_holding(roots: list[Path], needles: list[bytes]) -> list[str]:
    """Regular files under `roots` holding one of `needles`, tmpfs mounts left out (memory)."""
    skip = [p + "/" for p in tmpfs_mounts()]
    found = []
    for root in roots:
        for folder, dirs, names in os.walk(root):
            if any((folder + "/").startswith(s) for s in skip):
                dirs[:] = []
                continue
            for name in names:
                path = os.path.join(folder, name)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    continue  # gone meanwhile (a RUN's bundle)
                if any(n in data for n in needles):
                    found.append(path)
    return found


@pytest.fixture
def debug_daemon(daemon_factory, client_factory, busybox_tar: Path):  # type: ignore[no-untyped-def]
    """A daemon logging at debug level, with busybox imported; (daemon, client)."""
    daemon = daemon_factory("dbg", ["--debug"])
    daemon.start()
    client = client_factory(daemon)
    client("ctr-img", "import", str(busybox_tar), "busybox:latest")
    return daemon, client


WAITING_DOCKERFILE = """\
FROM busybox
RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /tok-sum; \
stat -c '%a %u %g' /run/secrets/tok > /tok-stat
RUN --mount=type=secret,id=tok,target=/s/t,mode=0440,uid=1000,gid=1001 \
stat -c '%a %u %g' /s/t > /t-stat; cat /s/t | sha256sum | cut -d' ' -f1 > /t-sum
RUN --mount=type=secret,id=api,env=API_KEY printf %s "$API_KEY" | sha256sum | cut -d' ' -f1 \
> /env-sum; ls -A /run/secrets > /env-ls 2>&1; true
RUN --mount=type=secret,id=api,env=API_KEY,target=/both printf %s "$API_KEY" | cmp - /both; \
echo $? > /both-status
RUN --mount=type=secret,id=absent,env=ABSENT test -e /run/secrets/absent; echo $? > /absent; \
echo "${ABSENT-unset}" >> /absent
RUN --mount=type=secret,id=tok,env=TOK --mount=type=secret,id=api,env=API_KEY \
--mount=target=/ctx while [ ! -e /ctx/go ]; do sleep 0.1; done
"""


def _wait_for(condition, what: str, process: subprocess.Popen) -> None:  # type: ignore[no-untyped-def, type-arg]
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, f"the build ended before {what}"
        assert time.monotonic() < deadline, f"no {what}"
        time.sleep(0.05)


def test_secrets_reach_the_run_and_nothing_else_and_a_changed_one_is_cached(
        debug_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    daemon, client = debug_daemon
    tok, api = f"isb-tok-{secrets.token_hex(8)}", f"isb-api-{secrets.token_hex(8)}"
    (tmp_path / "tok.txt").write_text(tok)
    ctx = context(tmp_path, WAITING_DOCKERFILE)
    command = [sys.executable, "-m", "isula_build.cli.main", "--host", daemon.host,
               "ctr-img", "build", "-t", "isb-test-secret:1", "--secret",
               f"id=tok,src={tmp_path / 'tok.txt'}", "--secret", "id=api,env=ISB_API", str(ctx)]
    process = subprocess.Popen(command, env={**client.env, "ISB_API": api},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # While the last RUN waits: its tmpfs is mounted, runc holds its container.
        secret_dir = daemon.run_root / "secrets"
        state = daemon.run_root / "runc"
        _wait_for(lambda: state.is_dir() and any(state.glob("isula-build-*/state.json"))
                  and any(b"/ctx/go" in (Path(p) / "bundle" / "config.json").read_bytes()
                          for p in tmpfs_mounts() if p.startswith(str(secret_dir) + "/")
                          and (Path(p) / "bundle" / "config.json").exists()),
                  "running RUN with secrets", process)
        needles = [tok.encode(), api.encode()]
        assert files_holding([daemon.root], needles) == []
        (ctx / "go").touch()
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait()
    assert process.returncode == 0, err
    (ctx / "go").unlink()

    layer = top_layer(client, tmp_path, "isb-test-secret:1")
    assert layer["tok-sum"] == layer["t-sum"] == sha(tok)
    assert layer["tok-stat"] == b"400 0 0\n" and layer["t-stat"] == b"440 1000 1001\n"
    assert layer["env-sum"] == sha(api) and layer["env-ls"] != b"tok\n"
    assert layer["both-status"] == b"0\n"
    assert layer["absent"] == b"1\nunset\n"        # not given, not required: absent
    assert not {p.split("/")[0] for p in layer} & {"run", "s", "both", "ctx"}  # no mount point

    archive = tmp_path / "image.tar"
    client("ctr-img", "save", "-o", str(archive), "isb-test-secret:1")
    saved = archive.read_bytes()   # docker-archive: layers uncompressed, config, history
    assert b"/tok-sum" in saved and tok.encode() not in saved and api.encode() not in saved
    log = daemon.log()
    assert "step key" in log            # it logged at debug level …
    assert tok not in log and api not in log   # … and never a secret
    assert tok not in out + err and api not in out + err
    assert list((daemon.data_root / "cache").rglob("*"))   # the cache was written, …
    assert files_holding([daemon.root], needles) == []     # … and holds no secret
    assert list(secret_dir.iterdir()) == [] and leftovers(daemon) == []

    # Another secret value: served from the cache, the step keys hold only the ids.
    (tmp_path / "tok.txt").write_text("another value")
    again = client("ctr-img", "build", "-t", "isb-test-secret:2", "--secret",
                   f"id=tok,src={tmp_path / 'tok.txt'}", "--secret", "id=api,env=ISB_API",
                   str(ctx), env={"ISB_API": "changed"}).stdout
    assert again.count(USING) == 6
    assert top_layer(client, tmp_path, "isb-test-secret:2")["tok-sum"] == sha(tok)


@pytest.mark.parametrize("instruction, flags, error", [
    ("RUN --mount=type=secret,id=tok,required true", [],
     'secret "tok" is required but was not given'),
    ("RUN --mount=type=secret,id=tok,required=true,env=T true", ["--secret", "id=other,env=HOME"],
     'secret "tok" is required but was not given'),
    ("RUN --mount=type=ssh,required true", [],
     'ssh agent "default" is required but was not forwarded'),
    ("RUN --mount=type=secret,id=x,colour=red true", [], "unexpected key 'colour'"),
    ("RUN --mount=type=ssh,source=/x true", [], "ssh does not support source"),
    ("RUN --mount=type=secret,id=x,env= true", [], "invalid value for env"),
    ("RUN --mount=type=ssh,uid=me true", [], "invalid value me for uid"),
], ids=["secret", "secret-env", "ssh", "option", "ssh-source", "empty-env", "uid"])
def test_missing_required_and_bad_options_fail_before_any_step(
        client, daemon, busybox_image: str, tmp_path: Path, instruction: str,
        flags: list[str], error: str) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo must-not-run\n" + instruction + "\n")
    result = build(client, ctx, *flags, check=False)
    assert result.returncode == 1
    assert "Dockerfile line 3:" in result.stderr and error in result.stderr
    assert "must-not-run" not in result.stdout
    assert image_ids(client) == {busybox_image[:12]}
    assert leftovers(daemon) == []


def test_a_required_secret_named_by_a_variable_fails_at_its_step(
        client, busybox_image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nARG ID=tok\nRUN echo ran-first\n"
                            "RUN --mount=type=secret,id=$ID,required true\n")
    result = build(client, ctx, "--build-arg", "ID=api", check=False)
    assert result.returncode == 1
    assert 'Dockerfile line 4: secret "api" is required but was not given' in result.stderr


@pytest.mark.parametrize("flags, env, error", [
    (["--secret", "id=tok,src=/nonexistent/isb"], {},
     "--secret id=tok: cannot read /nonexistent/isb: No such file or directory"),
    (["--secret", "id=tok,env=ISB_UNSET_VARIABLE"], {},
     "the environment variable ISB_UNSET_VARIABLE is not set"),
    (["--secret", "id=tok,colour=red"], {}, "unexpected key 'colour'"),
    (["--secret", "src=/etc/hostname"], {}, "the id is missing"),
    (["--secret", "id=a,env=HOME", "--secret", "id=a,env=HOME"], {}, "--secret id=a is given twice"),
    (["--ssh", "default"], {"SSH_AUTH_SOCK": ""}, "SSH_AUTH_SOCK is not set"),
    (["--ssh", "key=/nonexistent/isb"], {}, "cannot use /nonexistent/isb"),
], ids=["src", "env", "key", "no-id", "twice", "no-agent", "no-key"])
def test_bad_secret_and_ssh_flags_are_refused_by_the_client(
        client, busybox_image: str, tmp_path: Path, flags: list[str], env: dict[str, str],
        error: str) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo must-not-run\n")
    result = client("ctr-img", "build", *flags, str(ctx), check=False, env=env)
    assert result.returncode != 0 and error in result.stderr
    assert "must-not-run" not in result.stdout


# --- ssh ------------------------------------------------------------------------------------

@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real ssh-agent holding a fresh key: (its socket, the key's fingerprint)."""
    sock = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        while not os.path.exists(sock):
            assert agent.poll() is None, "ssh-agent did not start"
            time.sleep(0.02)
        key = tmp_path / "agent_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "isb-agent-key",
                        "-f", str(key)], check=True)
        subprocess.run(["ssh-add", str(key)], env={**os.environ, "SSH_AUTH_SOCK": sock},
                       check=True, capture_output=True)
        yield sock, fingerprint(key)
    finally:
        agent.terminate()
        agent.wait()


def fingerprint(key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", f"{key}.pub"], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]


def ssh_add_tools(folder: Path) -> None:
    """The host's ssh-add with its libraries and loader, to run in busybox with ld.so."""
    folder.mkdir()
    binary = shutil.which("ssh-add")
    assert binary
    shutil.copy(binary, folder / "ssh-add")
    ldd = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    for line in ldd.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            shutil.copy(path, folder / Path(path).name)
    loaders = list(folder.glob("ld-linux*"))
    assert len(loaders) == 1
    loaders[0].rename(folder / "ld.so")


SSH_ADD = "/tools/ld.so --library-path /tools /tools/ssh-add -l"


def test_ssh_agents_are_forwarded_socket_and_key_file(
        client, daemon, busybox_image: str, tmp_path: Path, ssh_agent: tuple[str, str]) -> None:
    sock, agent_print = ssh_agent
    own_key = tmp_path / "own_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "isb-own-key", "-f",
                    str(own_key)], check=True)
    ctx = context(tmp_path, (
        "FROM busybox\n"
        f"RUN --mount=type=ssh --mount=source=tools,target=/tools {SSH_ADD} > /default-keys; "
        "echo $SSH_AUTH_SOCK > /sock; stat -c '%a %u %F' $SSH_AUTH_SOCK > /sock-stat\n"
        "RUN --mount=type=ssh,id=own,target=/agent,uid=1000,mode=0660 --mount=source=tools,target=/tools "
        f"SSH_AUTH_SOCK=/agent {SSH_ADD} > /own-keys; stat -c '%a %u' /agent > /own-stat\n"
        "RUN --mount=type=ssh,id=none ls /run/buildkit > /none 2>&1; echo $SSH_AUTH_SOCK >> /none\n"))
    ssh_add_tools(ctx / "tools")
    result = client("ctr-img", "build", "-t", "isb-test-ssh:1", "--ssh", "default", "--ssh",
                    f"own={own_key}", str(ctx), env={"SSH_AUTH_SOCK": sock})
    layer = top_layer(client, tmp_path, "isb-test-ssh:1")
    default_keys = (layer["default-keys"] or b"").decode()
    assert agent_print in default_keys and "isb-agent-key" in default_keys, result.stdout + result.stderr
    assert layer["sock"] == b"/run/buildkit/ssh_agent.0\n"
    assert layer["sock-stat"] == b"600 0 socket\n"
    own_keys = (layer["own-keys"] or b"").decode()
    assert fingerprint(own_key) in own_keys and agent_print not in own_keys
    assert layer["own-stat"] == b"660 1000\n"
    # not forwarded, not required: no socket, but SSH_AUTH_SOCK as BuildKit sets it
    assert b"No such file or directory" in (layer["none"] or b"")
    assert (layer["none"] or b"").endswith(b"/run/buildkit/ssh_agent.0\n")
    assert not {p.split("/")[0] for p in layer} & {"run", "agent", "tools"}
    assert list((daemon.run_root / "secrets").iterdir()) == [] and leftovers(daemon) == []
    assert not list(Path("/tmp").glob("isula-build-ssh-*/agent-*.sock"))  # the client's agent ended


WAIT_FOR_GO = "--mount=target=/ctx while [ ! -e /ctx/go ]; do sleep 0.1; done"


def start_build(client, ctx: Path, *flags: str, env: dict[str, str] | None = None  # type: ignore[no-untyped-def]
                ) -> subprocess.Popen:  # type: ignore[type-arg]
    return subprocess.Popen([sys.executable, "-m", "isula_build.cli.main", "--host",
                             client.daemon.host, "ctr-img", "build", *flags, str(ctx)],
                            env={**client.env, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_killed_daemon_leaves_no_secret_tmpfs_after_its_restart(
        client, daemon, busybox_image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, f"FROM busybox\nRUN --mount=type=secret,id=tok {WAIT_FOR_GO}\n")
    process = start_build(client, ctx, "--secret", "id=tok,env=ISB_TOK", env={"ISB_TOK": "v"})
    secret_dir = str(daemon.run_root / "secrets") + "/"
    try:
        _wait_for(lambda: any(p.startswith(secret_dir) for p in tmpfs_mounts()),
                  "secret tmpfs", process)
        daemon.stop(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert any(p.startswith(secret_dir) for p in tmpfs_mounts())   # what the kill left …
    daemon.start()
    assert not any(p.startswith(secret_dir) for p in tmpfs_mounts())   # … the start removed
    assert list((daemon.run_root / "secrets").iterdir()) == [] and leftovers(daemon) == []


def test_an_ssh_forwarding_stream_without_the_builds_token_is_refused(
        client, daemon, busybox_image: str, tmp_path: Path, ssh_agent: tuple[str, str]) -> None:
    import grpc

    from isula_build.api import control_pb2, control_pb2_grpc

    ctx = context(tmp_path, f"FROM busybox\nRUN --mount=type=ssh {WAIT_FOR_GO}\n")
    process = start_build(client, ctx, "--ssh", f"default={ssh_agent[0]}")
    work = daemon.data_root / "tmp"
    try:
        _wait_for(lambda: work.is_dir() and any(work.glob("build-*"))
                  and any(p.startswith(str(daemon.run_root)) for p in tmpfs_mounts()),
                  "running RUN with an agent", process)
        build_id = next(work.glob("build-*")).name.removeprefix("build-")
        with grpc.insecure_channel(daemon.host) as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            frames = iter([control_pb2.SSHFrame(buildID=build_id, token="0" * 32)])
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.SSHForward(frames, timeout=60))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "wrong ssh forwarding token" in str(refused.value.details())
        (ctx / "go").touch()
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err   # the client's own stream was not disturbed
