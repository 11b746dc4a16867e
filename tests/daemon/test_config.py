"""Configuration files and flags (SPEC §2, §3): bad input stops the daemon naming the file."""

from __future__ import annotations

import grp
import subprocess
from pathlib import Path

import grpc
import pytest

from isula_build.api import control_pb2 as pb
from isula_build.api import control_pb2_grpc
from tests.daemon.helpers import (
    command_without,
    run_command_to_exit,
    run_to_exit,
    running,
    write,
)


def refused(daemon, *extra: str) -> str:
    result = run_to_exit(daemon, *extra)
    assert result.code == 1, result.output
    assert "is listening" not in result.output
    return result.output


def test_config_file_over_1_mib_is_refused(daemon_factory):
    d = daemon_factory()
    conf = write(d.config_dir / "configuration.toml", "# padding\n" * (1 << 17) + "debug = true\n")
    assert conf.stat().st_size > 1 << 20
    out = refused(d)
    assert str(conf) in out and "1 MiB" in out


@pytest.mark.parametrize("name", ["storage.toml", "registries.toml", "policy.json"])
def test_every_config_file_is_limited_to_1_mib(daemon_factory, name):
    d = daemon_factory()
    path = write(d.config_dir / name, " " * ((1 << 20) + 1))
    out = refused(d)
    assert str(path) in out and "1 MiB" in out


def test_unknown_key_is_refused(daemon_factory):
    d = daemon_factory()
    conf = write(d.config_dir / "configuration.toml", 'debug = false\nlog_level = "info"\n')
    out = refused(d)
    assert str(conf) in out and '"log_level"' in out


def test_invalid_loglevel_is_refused(daemon_factory):
    d = daemon_factory()
    conf = write(d.config_dir / "configuration.toml", 'loglevel = "verbose"\n')
    out = refused(d)
    assert str(conf) in out and "verbose" in out


def test_wrong_value_type_is_refused(daemon_factory):
    d = daemon_factory()
    conf = write(d.config_dir / "configuration.toml", 'experimental = "yes"\n')
    out = refused(d)
    assert str(conf) in out and "boolean" in out


def test_bad_toml_is_refused(daemon_factory):
    d = daemon_factory()
    conf = write(d.config_dir / "configuration.toml", "debug = \n[unclosed\n")
    out = refused(d)
    assert str(conf) in out and "invalid TOML" in out


def test_bad_policy_json_is_refused(daemon_factory):
    d = daemon_factory()
    policy = write(d.config_dir / "policy.json", '{"default": [{"type": "insecureAcceptAnything"}')
    out = refused(d)
    assert str(policy) in out and "invalid JSON" in out


@pytest.mark.parametrize("name, text, error", [
    ("configuration.toml", "debug = " + "[" * 5000 + "]" * 5000 + "\n", "invalid TOML: arrays"),
    ("storage.toml", "a = " + "{b = " * 5000 + "1" + "}" * 5000 + "\n", "invalid TOML: arrays"),
    ("policy.json", '{"default": ' + "[" * 100_000 + "]" * 100_000 + "}", "invalid JSON: arrays"),
], ids=["configuration.toml", "storage.toml", "policy.json"])
def test_deeply_nested_config_is_refused(daemon_factory, name, text, error):
    # Python's TOML and JSON parsers recurse once a level: such a file stopped the daemon
    # with a RecursionError traceback instead of naming the file.
    d = daemon_factory()
    conf = write(d.config_dir / name, text)
    out = refused(d)
    assert str(conf) in out and error in out and "Traceback" not in out


def test_policy_needing_signatures_is_refused(daemon_factory):
    d = daemon_factory()
    policy = write(d.config_dir / "policy.json",
                   '{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k"}]}')
    out = refused(d)
    assert str(policy) in out and "signedBy" in out


def test_policy_without_default_is_refused(daemon_factory):
    d = daemon_factory()
    policy = write(d.config_dir / "policy.json", '{"transports": {}}')
    out = refused(d)
    assert str(policy) in out and '"default"' in out


def test_registry_with_scheme_is_refused(daemon_factory):
    d = daemon_factory()
    reg = write(d.config_dir / "registries.toml",
                '[registries.search]\nregistries = ["https://docker.io"]\n')
    out = refused(d)
    assert str(reg) in out and "https://docker.io" in out


def test_unknown_storage_driver_is_refused(daemon_factory):
    d = daemon_factory()
    storage = write(d.config_dir / "storage.toml", '[storage]\ndriver = "devicemapper"\n')
    out = refused(d)
    assert str(storage) in out and "devicemapper" in out


def test_bad_storage_opt_flag_is_refused(daemon_factory):
    out = refused(daemon_factory(), "--storage-opt", "overlay.size=10G")
    assert "--storage-opt" in out and "overlay.size=10G" in out


def test_missing_group_from_flag_is_named(daemon_factory):
    out = refused(daemon_factory(), "--group", "isb-no-such-group")
    assert 'group "isb-no-such-group"' in out and "does not exist" in out


def test_missing_group_from_file_is_named(daemon_factory):
    d = daemon_factory()
    conf = write(d.config_dir / "configuration.toml", 'group = "isb-no-such-group"\n')
    result = run_command_to_exit(command_without(d, "--group"))
    assert result.code == 1
    assert 'group "isb-no-such-group"' in result.output and str(conf) in result.output


def test_default_group_isula_is_used_without_flag_or_file(daemon_factory, tmp_path):
    d = daemon_factory()
    cmd = command_without(d, "--group")
    try:
        isula_gid = grp.getgrnam("isula").gr_gid
    except KeyError:
        # A machine without the group (CI): the daemon names the missing default group.
        result = run_command_to_exit(cmd)
        assert result.code == 1 and 'group "isula"' in result.output
        return
    # A machine where scripts/setup.sh made the group: the socket belongs to it.
    with running(cmd, tmp_path / "default-group.log"):
        assert d.socket.stat().st_gid == isula_gid


@pytest.fixture
def tmpfs_dir(tmp_path: Path):
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "isb-test", str(mount_point)],
                   check=True)
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_data_root_on_tmpfs_is_refused(daemon_factory, tmpfs_dir):
    data_root = tmpfs_dir / "data"
    out = refused(daemon_factory(), "--dataroot", str(data_root))
    assert str(data_root) in out and "tmpfs" in out
    assert not data_root.exists(), "nothing is created before the check"


def test_data_root_on_tmpfs_from_file_is_refused(daemon_factory, tmpfs_dir):
    d = daemon_factory()
    write(d.config_dir / "configuration.toml", f'data_root = "{tmpfs_dir}/data"\n')
    result = run_command_to_exit(command_without(d, "--dataroot"))
    assert result.code == 1 and "tmpfs" in result.output


def test_relative_data_root_is_refused(daemon_factory):
    out = refused(daemon_factory(), "--dataroot", "relative/data")
    assert "--dataroot" in out and "absolute" in out


def info(d) -> pb.InfoResponse:
    with grpc.insecure_channel(d.host) as channel:
        return control_pb2_grpc.ControlStub(channel).Info(pb.InfoRequest())


def test_flags_win_over_files(daemon_factory, tmp_path):
    d = daemon_factory(extra_args=["--experimental", "--log-level", "debug"])
    write(d.config_dir / "configuration.toml", "\n".join([
        "experimental = false",
        'loglevel = "error"',
        f'data_root = "{tmp_path}/file-data"',
        f'run_root = "{tmp_path}/file-run"',
        'runtime = "/usr/sbin/runc"',
    ]) + "\n")
    d.start()
    got = info(d)
    assert got.experimental is True
    assert got.dataRoot == str(d.data_root) and got.runRoot == str(d.run_root)
    assert got.OCIRuntime == "/usr/sbin/runc"  # no flag for it: the file applies
    assert not (tmp_path / "file-data").exists()
    assert " DEBUG " in d.log(), "--log-level debug wins over the file's error level"


def test_file_values_apply_without_flags(daemon_factory, tmp_path):
    d = daemon_factory()
    write(d.config_dir / "configuration.toml", "\n".join([
        "experimental = true",
        'loglevel = ""',  # the original's sample file: empty means unset
        f'data_root = "{tmp_path}/file-data"',
        'group = "root"',
    ]) + "\n")
    write(d.config_dir / "registries.toml", "\n".join([
        "[registries.search]", 'registries = ["docker.io", "quay.io"]',
        "[registries.insecure]", 'registries = ["localhost:5000"]',
        "[registries.block]", 'registries = ["evil.example.com"]',
    ]) + "\n")
    write(d.config_dir / "storage.toml",
          '[storage]\ndriver = "overlay"\n[storage.options]\n'
          '[storage.options.overlay]\nmountopt = "nodev,metacopy=on"\n')
    write(d.config_dir / "policy.json",
          '{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": '
          '{"evil.example.com": [{"type": "reject"}]}}}')
    with running(command_without(d, "--dataroot"), tmp_path / "d.log"):
        got = info(d)
        assert got.experimental is True
        assert got.dataRoot == f"{tmp_path}/file-data"
        assert (tmp_path / "file-data").stat().st_mode & 0o777 == 0o700
        assert list(got.registryInfo.registriesSearch) == ["docker.io", "quay.io"]
        assert list(got.registryInfo.registriesInsecure) == ["localhost:5000"]
        assert list(got.registryInfo.registriesBlock) == ["evil.example.com"]


def test_config_dir_from_environment(daemon_factory, tmp_path):
    d = daemon_factory()
    env_dir = tmp_path / "env-etc"
    write(env_dir / "configuration.toml", "experimental = true\n")
    env = {"ISULABUILD_CONFIG_DIR": str(env_dir)}
    with running(command_without(d, "--config-dir"), tmp_path / "d.log", env):
        assert info(d).experimental is True
        assert (env_dir / "isula-build.pub").exists()


def test_bad_flag_value_exits_1(daemon_factory):
    out = refused(daemon_factory(), "--log-level", "loud")
    assert "--log-level" in out and "loud" in out


def test_containers_storage_conf_from_openeuler_starts_the_daemon(daemon_factory, tmp_path):
    # storage.toml as containers-storage.conf(5) writes it, with runroot/graphroot under
    # [storage] and keys isula-builder does not use; configuration.toml sets the data root only.
    d = daemon_factory()
    storage_run, storage_data = tmp_path / "storage-run", tmp_path / "storage-data"
    storage = write(d.config_dir / "storage.toml", "\n".join([
        "[storage]", 'driver = "overlay"', f'runroot = "{storage_run}"',
        f'graphroot = "{storage_data}"', "transient_store = true",
        "[storage.options]", "additionalimagestores = [", "]",
        "[storage.options.overlay]", 'mountopt = "nodev"',
        'mount_program = "/usr/bin/fuse-overlayfs"', "[storage.options.thinpool]",
    ]) + "\n")
    conf = write(d.config_dir / "configuration.toml",
                 f'data_root = "{tmp_path}/main-data"\nruntime = ""\n')
    log = tmp_path / "d.log"
    with running(command_without(d, "--dataroot", "--runroot"), log):
        got = info(d)
        assert got.runRoot == str(storage_run), "storage.toml's runroot applies"
        assert got.dataRoot == f"{tmp_path}/main-data", "configuration.toml's data_root wins"
    out = log.read_text()
    assert (f"INFO isula_build.daemon.main: configuration directory {d.config_dir}, run root "
            f"{storage_run}, data root {tmp_path}/main-data, storage driver overlay, runtime runc"
            in out)
    assert (f'INFO isula_build.daemon.main: config file {storage}: "storage.graphroot" '
            f'{storage_data} is overridden by "data_root" in {conf}: {tmp_path}/main-data is used'
            in out)
    for key in ("storage.transient_store", "storage.options.overlay.mount_program"):
        assert f'WARNING isula_build.daemon.main: config file {storage}: "{key}" is ignored' in out
    assert "additionalimagestores" not in out and "thinpool" not in out
    assert not storage_data.exists()
