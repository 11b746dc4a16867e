"""The client's flags and checks: everything here fails (or prints help) before any daemon is
contacted, so these tests run the real client against a socket nobody listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isula_build.cli import build, completion, images, registry
from isula_build.cli.connection import parse_duration, parse_timeout
from isula_build.cli.main import build_parser, normalize_bool_flags
from isula_build.errors import FlagError, InvalidArgument

from .conftest import RunClient

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTAL = {"ISULABUILD_CLI_EXPERIMENTAL": "enabled"}
UNREACHABLE = "Cannot connect to the isula-builder at {}. Is the isula-builder running?\n"


def command_paths() -> list[list[str]]:
    """Every command of the full (experimental) tree, hidden ones included."""
    return [node.path.split() for node in completion.walk(build_parser(experimental=True))]


# --- help -------------------------------------------------------------------------------------

def test_top_level_help_lists_the_commands(run_client: RunClient) -> None:
    r = run_client("--help")
    assert r.returncode == 0, r.stderr
    for command in ("ctr-img", "info", "login", "logout", "version"):
        assert command in r.stdout
    assert "completion" not in r.stdout  # hidden, as in the original
    assert "manifest" not in r.stdout    # experimental only


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(run_client: RunClient, path: list[str]) -> None:
    r = run_client(*path, "--help", env=EXPERIMENTAL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: isula-build")
    assert r.stderr == ""


def test_a_group_without_command_prints_its_help(run_client: RunClient) -> None:
    r = run_client("ctr-img")
    assert r.returncode == 0
    assert "images" in r.stdout and "build" in r.stdout


def test_version_flag(run_client: RunClient) -> None:
    r = run_client("-v")
    assert r.returncode == 0
    assert r.stdout.startswith("isula-build version 0.")


def test_unknown_command_is_an_error_with_exit_code_1(run_client: RunClient) -> None:
    r = run_client("frobnicate")
    assert r.returncode == 1
    assert "invalid choice" in r.stderr


# --- global flags -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc", "10", "50ms", "121s", "3m", "1x", "-1s", ""])
def test_bad_timeout_is_refused_before_connecting(run_client: RunClient, value: str) -> None:
    r = run_client("--timeout", value, "ctr-img", "images")
    if value == "":
        # An empty value means the default, as with the original.
        assert r.returncode == 1 and "Cannot connect" in r.stderr
        return
    assert r.returncode == 1
    assert "Cannot connect" not in r.stderr
    assert "timeout" in r.stderr or "duration" in r.stderr


@pytest.mark.parametrize("text,seconds", [
    ("500ms", 0.5), ("20s", 20.0), ("1m", 60.0), ("1m30s", 90.0), ("1.5s", 1.5),
    ("100ms", 0.1), ("2m", 120.0), ("1h", 3600.0), ("250us", 0.00025),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@given(st.integers(min_value=100, max_value=120_000))
def test_every_millisecond_count_in_range_is_accepted(ms: int) -> None:
    assert parse_timeout(f"{ms}ms") == pytest.approx(ms / 1000)


def test_timeout_range_bounds() -> None:
    assert parse_timeout(None) == 20.0
    with pytest.raises(FlagError, match=r"supported range \[100ms, 120s\]"):
        parse_timeout("99ms")
    with pytest.raises(FlagError, match="supported range"):
        parse_timeout("120001ms")


def test_global_flags_are_accepted_after_the_subcommand(run_client: RunClient) -> None:
    r = run_client("ctr-img", "images", "--timeout", "5x")
    assert r.returncode == 1
    assert "invalid duration" in r.stderr


def test_bad_log_level(run_client: RunClient) -> None:
    r = run_client("--log-level", "loud", "ctr-img", "images")
    assert r.returncode == 1
    assert "log level" in r.stderr


def test_host_must_be_a_unix_socket(run_client: RunClient) -> None:
    r = run_client("--host", "tcp://127.0.0.1:1234", "ctr-img", "images")
    assert r.returncode == 1
    assert "only unix sockets" in r.stderr


def test_unreachable_daemon(run_client: RunClient, nowhere: str) -> None:
    r = run_client("ctr-img", "images")
    assert r.returncode == 1
    assert r.stderr == UNREACHABLE.format(nowhere)
    assert r.stdout == ""


def test_unreachable_daemon_named_by_environment(run_client: RunClient, tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/env.sock"
    r = run_client("--host", address, "info")
    assert r.stderr == UNREACHABLE.format(address)
    env_run = subprocess.run([sys.executable, "-m", "isula_build.cli.main", "info"],
                             capture_output=True, text=True,
                             env={**os.environ, "ISULABUILD_HOST": address})
    assert env_run.returncode == 1
    assert env_run.stderr == UNREACHABLE.format(address)


def test_socket_nobody_accepts_on_fails_fast(run_client: RunClient, tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))  # bound but not listening: connections are refused
    try:
        r = run_client("--host", f"unix://{path}", "--timeout", "10s", "ctr-img", "images",
                       timeout=8)
    finally:
        sock.close()
    assert r.returncode == 1
    assert r.stderr == UNREACHABLE.format(f"unix://{path}")


# --- experimental gating ----------------------------------------------------------------------

def test_manifest_needs_experimental(run_client: RunClient) -> None:
    r = run_client("manifest", "inspect", "x")
    assert r.returncode == 1
    assert "invalid choice: 'manifest'" in r.stderr
    r = run_client("manifest", "--help", env=EXPERIMENTAL)
    assert r.returncode == 0
    for sub in ("create", "annotate", "inspect", "push"):
        assert sub in r.stdout


@pytest.mark.parametrize("args", [
    ["ctr-img", "build", "--format", "oci", "."],
    ["ctr-img", "save", "-f", "oci", "busybox", "-o", "x.tar"],
    ["ctr-img", "push", "-f", "oci", "localhost:5000/busybox"],
])
def test_format_flags_need_experimental(run_client: RunClient, args: list[str]) -> None:
    r = run_client(*args)
    assert r.returncode == 1
    assert "unrecognized arguments" in r.stderr


def test_format_defaults_to_oci_when_experimental() -> None:
    parser = build_parser(experimental=True)
    assert parser.parse_args(["ctr-img", "build", "."]).format == "oci"
    assert parser.parse_args(["ctr-img", "save", "a", "-o", "a.tar"]).format == "oci"
    assert parser.parse_args(["ctr-img", "push", "a"]).format == "oci"
    plain = build_parser(experimental=False)
    assert plain.parse_args(["ctr-img", "build", "."]).format == "docker"
    assert plain.parse_args(["ctr-img", "save", "a", "-o", "a.tar"]).format == "docker"


def test_bad_format_value_is_refused(run_client: RunClient) -> None:
    r = run_client("ctr-img", "build", "--format", "tar", ".", env=EXPERIMENTAL)
    assert r.returncode == 1
    assert "invalid choice: 'tar'" in r.stderr


# --- build ------------------------------------------------------------------------------------

@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN true\n")
    return ctx


@pytest.mark.parametrize("spec,message", [
    # The client refuses with the daemon's parser; where the original client had a check, its words.
    ("foo:bar", "transport 'foo' not support"),
    (":x", "transport should not be empty"),
    ("docker-archive", "destination should not be empty"),
    ("docker-archive:", "destination should not be empty"),
    ("docker-archive:  ", "destination should not be empty"),
    ("docker-archive::img:tag", "archive path is empty"),
    ("docker-archive:/tmp/x.tar:UPPER:tag", "repository name must be lowercase"),
    ("docker-archive:/tmp/x.tar:Reg.io/UPPER:tag", "repository name must be lowercase"),
    ("isulad:busybox", "use isulad:NAME:TAG"),
    ("docker-daemon:busybox", "use docker-daemon:NAME:TAG"),
    ("docker-daemon:busybox:-x", 'tag "-x"'),
    ("docker:registry.example.com/busybox:latest", "use docker://REGISTRY/REPO:TAG"),
    ("oci://", "use oci://REGISTRY/REPO:TAG"),
    ("docker://app:1", "does not name a registry"),
    ("docker://reg.io/a@sha256:" + "0" * 64, "digest"),
    ("docker-archive:" + "x" * 520, "longer than 512"),
])
def test_bad_output_specs_are_refused_before_connecting(
        run_client: RunClient, context: Path, spec: str, message: str) -> None:
    r = run_client("ctr-img", "build", "-o", spec, str(context))
    assert r.returncode == 1
    assert message in r.stderr
    assert "Cannot connect" not in r.stderr


def test_existing_archive_is_refused(run_client: RunClient, context: Path, tmp_path: Path) -> None:
    existing = tmp_path / "out.tar"
    existing.write_text("")
    r = run_client("ctr-img", "build", "-o", f"docker-archive:{existing}:a:b", str(context))
    assert r.returncode == 1
    assert "output file already exist" in r.stderr


def test_output_specs_are_normalized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert build.parse_output("docker-archive:out.tar:busybox:latest") == \
        f"docker-archive:{tmp_path}/out.tar:busybox:latest"
    assert build.parse_output("oci-archive:sub/o.tar:localhost:5000/a/b:v1") == \
        f"oci-archive:{tmp_path}/sub/o.tar:localhost:5000/a/b:v1"
    assert build.parse_output("docker-archive:out.tar") == f"docker-archive:{tmp_path}/out.tar"
    # Names are checked but sent as written (the daemon normalizes them itself).
    assert build.parse_output("oci-archive:o.tar:app") == f"oci-archive:{tmp_path}/o.tar:app"
    for spec in ("docker-daemon:busybox:latest", "isulad:busybox:v1",
                 "docker://localhost:5000/library/busybox:latest",
                 "oci://registry.example.com/repo:tag",
                 "docker://Registry.Example.COM:5000/repo:tag",  # hosts may be upper case
                 "isulad:LocalHost.Lan/app:V1"):
        assert build.parse_output(spec) == spec
    assert build.parse_output("") == ""


@pytest.mark.parametrize("value", [
    "build-time=2020-13-01 00:00:00", "build-time=yesterday", "build-time=2020-05-23",
    "when=2020-05-23 10:55:33", "2020-05-23 10:55:33",
])
def test_bad_build_static_is_refused_before_connecting(
        run_client: RunClient, context: Path, value: str) -> None:
    r = run_client("ctr-img", "build", "--build-static", value, str(context))
    assert r.returncode == 1
    assert "Cannot connect" not in r.stderr
    assert "build-static" in r.stderr or "build time" in r.stderr


def test_build_static_time_is_utc() -> None:
    assert build.parse_build_static(["build-time=2020-05-23 10:55:33"]) == \
        datetime(2020, 5, 23, 10, 55, 33, tzinfo=timezone.utc)
    assert build.parse_build_static([]) is None


def test_missing_dockerfile(run_client: RunClient, tmp_path: Path) -> None:
    r = run_client("ctr-img", "build", str(tmp_path))
    assert r.returncode == 1
    assert "check dockerfile failed" in r.stderr
    assert str(tmp_path / "Dockerfile") in r.stderr


def test_oversized_dockerfile(run_client: RunClient, context: Path) -> None:
    (context / "Dockerfile").write_text("#" * (1024 * 1024 + 1))
    r = run_client("ctr-img", "build", str(context))
    assert r.returncode == 1
    assert "exceeds the limit of 1 MiB" in r.stderr


def test_context_must_be_a_directory(run_client: RunClient, context: Path) -> None:
    r = run_client("ctr-img", "build", str(context / "Dockerfile"))
    assert r.returncode == 1
    assert "should be a directory" in r.stderr


def test_dockerfile_lookup(context: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (context / "Dockerfile").rename(context / "dockerfile")
    assert build.find_dockerfile(str(context), "") == str(context / "dockerfile")
    (context / "other").write_text("FROM scratch\n")
    monkeypatch.chdir(tmp_path)
    # -f is tried as given first, then relative to the context.
    assert build.find_dockerfile(str(context), "other") == str(context / "other")
    assert build.find_dockerfile(str(context), "ctx/other") == "ctx/other"


def test_bad_capability(run_client: RunClient, context: Path) -> None:
    r = run_client("ctr-img", "build", "--cap-add", "CAP_FLY", str(context))
    assert r.returncode == 1
    assert "cap CAP_FLY is invalid" in r.stderr


def test_build_args_from_environment() -> None:
    env = {"FOO": "from-env", "EMPTY": ""}
    assert build.resolve_build_args(["A=1", "FOO", "EMPTY", "UNSET", "B=x=y"], env) == \
        ["A=1", "FOO=from-env", "EMPTY=", "B=x=y"]
    with pytest.raises(InvalidArgument):
        build.resolve_build_args(["=v"], env)


def test_proxy_flag_spellings() -> None:
    parser = build_parser(experimental=False)

    def proxy(*words: str) -> bool:
        return parser.parse_args(normalize_bool_flags(["ctr-img", "build", *words, "."])).proxy

    assert proxy() is True
    assert proxy("--proxy") is True
    assert proxy("--proxy=false") is False
    assert proxy("--no-proxy") is False
    assert proxy("--proxy=true") is True


def test_proxy_build_args_need_the_daemon_key(run_client: RunClient, context: Path,
                                              tmp_path: Path) -> None:
    # A proxy arg makes the client encrypt; without the daemon's key it must say so.
    r = run_client("ctr-img", "build", "--build-arg", "http_proxy=http://p:3128", str(context),
                   env={"ISULABUILD_CONFIG_DIR": str(tmp_path / "no-config")})
    assert r.returncode == 1
    assert "isula-build.pub" in r.stderr


def test_proxy_build_args_are_all_encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "isula-build.pub").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    monkeypatch.setenv("ISULABUILD_CONFIG_DIR", str(tmp_path))
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA512()), algorithm=hashes.SHA512(), label=None)

    sealed, encrypted = build._seal_build_args(["A=1", "HTTPS_PROXY=http://u:p@proxy:8080"])
    assert encrypted
    assert [private.decrypt(bytes.fromhex(s), oaep).decode() for s in sealed] == \
        ["A=1", "HTTPS_PROXY=http://u:p@proxy:8080"]
    assert build._seal_build_args(["A=1"]) == (["A=1"], False)


def test_daemon_key_pair_decrypts_what_the_client_encrypts(tmp_path: Path) -> None:
    from isula_build.cli.crypto import encrypt, load_public_key
    from isula_build.daemon.keys import KeyPair

    pair = KeyPair()
    path = pair.write_public_key(tmp_path)
    ciphertext = encrypt("pässword", load_public_key(str(path)))
    assert ciphertext != encrypt("pässword", load_public_key(str(path)))  # OAEP is randomized
    assert pair.decrypt_hex(ciphertext) == "pässword"


# --- image commands ---------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["rm"], "imageID must be specified"),
    (["rm", "-a", "busybox"], "imageID is not allowed when using --all"),
    (["rm", "-p", "busybox"], "imageID is not allowed when using --prune"),
    (["rm", "-a", "-p"], "--prune is not allowed when using --all"),
    (["save", "busybox"], "output path(-o) should not be empty"),
    (["save", "-o", "x.tar"], "save accepts at least one image"),
    (["save", "busybox", "-o", "a:b.tar"], "colon in path"),
    (["save", "busybox", "-o", "x.tar", "-b", "base"], "conflict flags"),
    (["save", "app", "-l", "lib"], "base image name(-b) must be provided"),
    (["load"], "tarball path should not be empty"),
    (["load", "-i", "/nonexistent.tar"], "stat '/nonexistent.tar' failed"),
    (["load", "-d", "/tmp"], "app image name(-i) should not be empty"),
    (["load", "-i", "app:latest", "-d", "/nonexistent"], "is not exist"),
    (["import", "/nonexistent.tar"], "stat '/nonexistent.tar' failed"),
    (["tag", "only-one"], "the following arguments are required"),
])
def test_image_command_checks(run_client: RunClient, args: list[str], message: str) -> None:
    r = run_client("ctr-img", *args)
    assert r.returncode == 1
    assert message in r.stderr
    assert "Cannot connect" not in r.stderr


def test_oci_save_takes_one_image(run_client: RunClient, tmp_path: Path) -> None:
    r = run_client("ctr-img", "save", "a", "b", "-o", str(tmp_path / "x.tar"), env=EXPERIMENTAL)
    assert r.returncode == 1
    assert "oci image format now only supports saving single image" in r.stderr


def test_save_refuses_an_existing_file(run_client: RunClient, tmp_path: Path) -> None:
    (tmp_path / "x.tar").write_text("")
    r = run_client("ctr-img", "save", "a", "-o", "x.tar", cwd=tmp_path)
    assert r.returncode == 1
    assert f"output file already exist: '{tmp_path}/x.tar'" in r.stderr


def test_import_refuses_empty_and_directories(run_client: RunClient, tmp_path: Path) -> None:
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    assert "is empty" in run_client("ctr-img", "import", str(empty)).stderr
    assert "regular file" in run_client("ctr-img", "import", str(tmp_path)).stderr


def test_saved_names_follow_the_original() -> None:
    assert images.saved_names(["busybox:latest"]) == "busybox:latest"
    assert images.saved_names(["busybox:latest", "nginx:latest"]) == \
        "[busybox:latest nginx:latest]"


# --- registry commands --------------------------------------------------------------------------

def test_login_stdin_needs_username(run_client: RunClient) -> None:
    r = run_client("login", "-p", "registry.example.com", input="secret\n")
    assert r.returncode == 1
    assert "must provides --password-stdin with --username" in r.stderr


def test_logout_needs_a_server_or_all(run_client: RunClient) -> None:
    r = run_client("logout")
    assert r.returncode == 1
    assert "empty registry found" in r.stderr


@pytest.mark.parametrize("command", ["pull", "push"])
@pytest.mark.parametrize("name,message", [
    ("UPPER/app:1", "repository name must be lowercase"),
    ("Reg.IO/App:1", "repository name must be lowercase"),
    ("reg.io/app@sha256:" + "0" * 64, "digest"),
    (" busybox", "may only contain"),
    ("a" * 256, "longer than 255"),
])
def test_image_names_are_refused_with_the_daemons_grammar(
        run_client: RunClient, command: str, name: str, message: str) -> None:
    r = run_client("ctr-img", command, name)
    assert r.returncode == 1
    assert f'invalid image name "{name}": ' in r.stderr and message in r.stderr
    assert "Cannot connect" not in r.stderr


@pytest.mark.parametrize("command", ["pull", "push"])
def test_upper_case_registry_host_passes_the_client(run_client: RunClient, command: str) -> None:
    r = run_client("ctr-img", command, "Reg.Example.COM:5000/app:V1")
    assert r.returncode == 1 and "Cannot connect" in r.stderr


@pytest.mark.parametrize("given_server,host", [
    ("registry.example.com", "registry.example.com"),
    ("https://index.docker.io/v1", "index.docker.io"),
    ("http://localhost:5000/", "localhost:5000"),
    ("docker://hub.example.com/library", "hub.example.com"),
])
def test_server_parsing(given_server: str, host: str) -> None:
    assert registry.parse_server(given_server) == host


def test_server_parsing_refuses_empty_and_traversal() -> None:
    for bad in ("https://", "/x", "..", "a" * 256):
        with pytest.raises(InvalidArgument):
            registry.parse_server(bad)


def test_password_from_stdin() -> None:
    import io

    assert registry.read_password_stdin(io.StringIO("s3cret\n")) == "s3cret"
    with pytest.raises(InvalidArgument, match="can not be empty"):
        registry.read_password_stdin(io.StringIO("\n"))
    with pytest.raises(InvalidArgument, match="exceeded"):
        registry.read_password_stdin(io.StringIO("x" * 129))


# --- completion and start-up cost ---------------------------------------------------------------

def test_completion_matches_the_contrib_file(run_client: RunClient) -> None:
    r = run_client("completion")
    assert r.returncode == 0
    assert r.stdout == (REPO / "contrib" / "completion" / "isula-build").read_text()
    syntax = subprocess.run(["bash", "-n"], input=r.stdout, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def test_completion_completes_commands_and_flags(run_client: RunClient, tmp_path: Path) -> None:
    script = tmp_path / "c.bash"
    script.write_text(run_client("completion").stdout)

    def complete(*words: str) -> set[str]:
        line = " ".join(["isula-build", *words])
        probe = (f'source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; '
                 '_isula_build; printf "%s\\n" "${COMPREPLY[@]}"')
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
        return set(out.stdout.split())

    assert {"ctr-img", "info", "login", "logout", "version"} <= complete("")
    assert "images" in complete("ctr-img", "im")
    assert {"--filename", "--build-arg"} <= complete("ctr-img", "build", "--")
    assert complete("--timeout", "5s", "ctr-img", "") >= {"build", "images", "save"}


def _imported_modules(*args: str) -> set[str]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "isula_build.cli.main", *args],
                       capture_output=True, text=True)
    return {line.split("|")[-1].strip() for line in p.stderr.splitlines()
            if line.startswith("import time:")}


def test_help_imports_neither_grpc_nor_cryptography() -> None:
    modules = _imported_modules("--help")
    assert "grpc" not in modules
    assert "isula_build.api.control_pb2" not in modules
    assert not any(m.startswith("cryptography") for m in modules)


def test_commands_without_secrets_do_not_import_cryptography(nowhere: str) -> None:
    modules = _imported_modules("--host", nowhere, "ctr-img", "images")
    assert "grpc" in modules  # it did try to connect
    assert not any(m.startswith("cryptography") for m in modules)


@pytest.mark.parametrize("flags, message", [
    (["--cache-to", "reg.io/app:c,mode=all"], "mode must be min or max"),
    (["--cache-to", "reg.io/app:c,compression=zstd"], "unknown option 'compression'"),
    (["--cache-to", "mode=max"], "no image reference"),
    (["--cache-to", "type=local,dest=/tmp/x"], "only type=registry"),
    (["--cache-to", "app:cache"], "does not name a registry"),
    (["--cache-from", "app:cache"], "does not name a registry"),
])
def test_bad_cache_refs_are_refused_before_connecting(
        run_client: RunClient, context: Path, flags: list[str], message: str) -> None:
    r = run_client("ctr-img", "build", *flags, str(context))
    assert r.returncode == 1
    assert message in r.stderr
    assert "Cannot connect" not in r.stderr
