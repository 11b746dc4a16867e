"""Pure pieces of the daemon: size formatting, the signature policy, the config readers and
the merging of files and flags."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from isula_build.daemon.config import FileConfig, MainConfig, StorageConfig, load_file_config
from isula_build.daemon.options import DaemonOptions, Flags, resolve_options
from isula_build.daemon.handlers.images import format_size
from isula_build.errors import ConfigError
from isula_build.registry.settings import PolicyRequirement, SignaturePolicy
from isula_build.store.space import SpaceReserve
from isula_build.units import format_binary_size, parse_size


@pytest.mark.parametrize("size, text", [
    (0, "0 B"), (832, "832 B"), (1000, "1 KB"), (1234, "1.23 KB"), (5_850_000, "5.85 MB"),
    (999_999, "1e+03 KB"),  # Go's %.3g gives the same for a value that rounds up to 1000
    (12_345_678_901, "12.3 GB"), (7 * 10**15, "7e+03 TB"),
])
def test_format_size_matches_go(size, text):
    assert format_size(size) == text


def test_policy_most_specific_scope_wins():
    reject = (PolicyRequirement("reject"),)
    accept = (PolicyRequirement("insecureAcceptAnything"),)
    policy = SignaturePolicy(default=reject, transports={"docker": {
        "": accept, "evil.io": reject, "evil.io/good": accept}})
    assert policy.accepts("docker", "docker.io/library/busybox")
    assert not policy.accepts("docker", "evil.io/app")
    assert policy.accepts("docker", "evil.io/good/app")
    assert policy.accepts("docker", "evil.iox/app"), "a scope matches whole path components"
    assert not policy.accepts("docker-archive", "x"), "other transports fall back to the default"


def test_original_sample_files_are_accepted(tmp_path: Path):
    # The files the original ships in /etc/isula-build (comments trimmed).
    (tmp_path / "configuration.toml").write_text(
        'debug = false\nloglevel = ""\ngroup = "root"\nrun_root = "/var/run/isula-build/"\n'
        'data_root = "/var/lib/isula-build/"\nruntime = ""\n')
    (tmp_path / "storage.toml").write_text(
        '[storage]\ndriver = "overlay"\n[storage.options]\n[storage.options.overlay]\n'
        'mountopt = "nodev"\n')
    (tmp_path / "registries.toml").write_text(
        "[registries.search]\nregistries = []\n[registries.insecure]\nregistries = []\n")
    (tmp_path / "policy.json").write_text(
        '{\n  "default": [\n    {\n      "type": "insecureAcceptAnything"\n    }\n  ],\n'
        '  "transports": {}\n}\n')
    config = load_file_config(tmp_path)
    assert config.main.loglevel is None and config.main.runtime is None
    assert config.main.data_root == Path("/var/lib/isula-build")
    assert config.storage.mountopt == "nodev"
    assert config.registries.search == ()
    assert config.policy.accepts("docker", "docker.io/library/busybox")


def test_missing_files_mean_defaults(tmp_path: Path):
    config = load_file_config(tmp_path / "absent")
    assert config.main.debug is None and config.policy.accepts("docker", "any/thing")


def test_config_path_must_be_a_regular_file(tmp_path: Path):
    (tmp_path / "configuration.toml").mkdir()
    with pytest.raises(ConfigError, match="configuration.toml: must be a regular file"):
        load_file_config(tmp_path)


def test_forbidden_mount_option(tmp_path: Path):
    (tmp_path / "storage.toml").write_text('[storage.options.overlay]\nmountopt = "nodev,suid"\n')
    with pytest.raises(ConfigError, match='mount option "suid"'):
        load_file_config(tmp_path)


# --- storage.toml in containers-storage.conf(5) form ----------------------------------------

# /etc/containers/storage.conf of an openEuler machine (comments trimmed): the roots, empty
# tables and lists, and keys isula-builder has no use for.
OPENEULER_STORAGE_CONF = """\
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
rootless_storage_path = "$HOME/.local/share/containers/storage"
[storage.options]
additionalimagestores = [
]
size = ""
remap-uids = "0:1668442479:65536"
pull_options = {enable_partial_images = "false", use_hard_links = "false"}
[storage.options.overlay]
mountopt = "nodev,metacopy=on"
mount_program = "/usr/bin/fuse-overlayfs"
[storage.options.thinpool]
[storage.options.zfs]
fsname = "tank"
"""


def storage_config(tmp_path: Path, text: str):
    (tmp_path / "storage.toml").write_text(text)
    return load_file_config(tmp_path).storage


def test_containers_storage_conf_is_accepted(tmp_path: Path):
    storage = storage_config(tmp_path, OPENEULER_STORAGE_CONF)
    assert storage.driver == "overlay" and storage.mountopt == "nodev,metacopy=on"
    assert storage.run_root == Path("/run/containers/storage")
    assert storage.graph_root == Path("/var/lib/containers/storage")
    path = tmp_path / "storage.toml"
    ignored = ["storage.rootless_storage_path", "storage.options.remap-uids",
               "storage.options.pull_options", "storage.options.zfs",
               "storage.options.overlay.mount_program"]
    assert [(n.level, n.message) for n in storage.notices] == [
        (logging.WARNING, f'config file {path}: "{key}" is ignored: isula-builder does not use it')
        for key in ignored], "empty values (size, additionalimagestores, thinpool) say nothing"


def test_unknown_storage_key_is_ignored_with_a_warning(tmp_path: Path):
    storage = storage_config(tmp_path, 'top = 1\n[storage]\ngrapharoot = "/x"\n'
                                       "[storage.options.overlay]\nmountopts = \"nodev\"\n")
    assert [n.message.split(": ", 1)[1] for n in storage.notices] == [
        'unknown key "top" is ignored', 'unknown key "storage.grapharoot" is ignored',
        'unknown key "storage.options.overlay.mountopts" is ignored']
    assert storage.graph_root is None and storage.mountopt is None


def test_storage_options_mountopt_applies_unless_the_overlay_table_sets_one(tmp_path: Path):
    assert storage_config(tmp_path, '[storage.options]\nmountopt = "nodev,noexec"\n'
                          ).mountopt == "nodev,noexec"
    assert storage_config(tmp_path, '[storage.options]\nmountopt = "nodev,noexec"\n'
                          '[storage.options.overlay]\nmountopt = "nosuid"\n').mountopt == "nosuid"


def test_empty_storage_values_mean_unset(tmp_path: Path):
    storage = storage_config(tmp_path, '[storage]\ndriver = ""\nrunroot = ""\ngraphroot = ""\n')
    assert storage == StorageConfig()


@pytest.mark.parametrize("text, problem", [
    ('[storage]\ngraphroot = "relative/dir"\n', '"storage.graphroot" must be an absolute path'),
    ("[storage]\nrunroot = 5\n", '"storage.runroot" must be a string, not an integer'),
    ('[storage]\ndriver = "vfs"\n', 'storage driver "vfs" is not supported'),
    ("[storage]\ndriver = true\n", '"storage.driver" must be a string'),
    ('storage = "overlay"\n', '"storage" must be a table'),
    ('[storage.options]\nmountopt = "suid"\n', 'mount option "suid" is not allowed'),
    ("[storage.options.overlay]\nmountopt = [\"nodev\"]\n",
     '"storage.options.overlay.mountopt" must be a string, not a list'),
    ('[storage]\ngraphroot = "/a"\ngraphroot = "/b"\n', "invalid TOML"),
])
def test_invalid_values_of_used_storage_keys_are_refused(tmp_path: Path, text, problem):
    with pytest.raises(ConfigError, match=re.escape(problem)) as exc:
        storage_config(tmp_path, text)
    assert str(tmp_path / "storage.toml") in str(exc.value)


def resolve(tmp_path: Path, main: MainConfig, storage: StorageConfig, **flags) -> DaemonOptions:
    return resolve_options(Flags(host="unix:///tmp/x.sock", config_dir=tmp_path, group="root",
                                 **flags), FileConfig(main=main, storage=storage))


def test_storage_roots_apply_when_nothing_else_sets_them(tmp_path: Path):
    options = resolve(tmp_path, MainConfig(), StorageConfig(run_root=Path("/s/run"),
                                                            graph_root=Path("/s/data")))
    assert (options.run_root, options.data_root) == (Path("/s/run"), Path("/s/data"))
    assert options.notices == ()


def test_configuration_toml_and_flags_win_over_storage_roots(tmp_path: Path):
    storage = StorageConfig(run_root=Path("/s/run"), graph_root=Path("/s/data"))
    options = resolve(tmp_path, MainConfig(run_root=Path("/m/run"), data_root=Path("/m/data")),
                      storage, data_root="/f/data")
    assert (options.run_root, options.data_root) == (Path("/m/run"), Path("/f/data"))
    storage_file, conf = tmp_path / "storage.toml", tmp_path / "configuration.toml"
    assert [(n.level, n.message) for n in options.notices] == [
        (logging.INFO, f'config file {storage_file}: "storage.graphroot" /s/data is overridden '
                       "by --dataroot: /f/data is used"),
        (logging.INFO, f'config file {storage_file}: "storage.runroot" /s/run is overridden by '
                       f'"run_root" in {conf}: /m/run is used')]
    same = resolve(tmp_path, MainConfig(data_root=Path("/s/data")), storage)
    assert same.notices == (), "a root set to the same path in both files is not overridden"


@pytest.mark.parametrize("text, size", [
    ("0", 0), ("4096", 4096), ("1GiB", 1 << 30), ("1gib", 1 << 30), ("1 GiB", 1 << 30),
    ("500MB", 500_000_000), ("2g", 2 << 30), ("512m", 512 << 20), ("1.5GiB", 3 << 29),
    ("10kB", 10_000), ("3KiB", 3072), ("1T", 1 << 40), ("7B", 7),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "-1", "1e9", "1.", "1 GiBs", "one", "1 2"])
def test_parse_size_refuses_what_is_no_size(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("size, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1 << 30, "1 GiB"), (300 << 20, "300 MiB"),
    (851_000_000, "811.6 MiB"), (3 << 39, "1.5 TiB"),
])
def test_format_binary_size(size, text):
    assert format_binary_size(size) == text


def main_config(tmp_path: Path, text: str) -> MainConfig:
    (tmp_path / "configuration.toml").write_text(text)
    return load_file_config(tmp_path).main


@pytest.mark.parametrize("text, size", [
    ('min_free_space = "512MiB"\n', 512 << 20), ("min_free_space = 0\n", 0),
    ("min_free_space = 1000000\n", 1_000_000), ("debug = true\n", None),
])
def test_min_free_space_is_a_size_or_a_number_of_bytes(tmp_path: Path, text, size):
    assert main_config(tmp_path, text).min_free_space == size


@pytest.mark.parametrize("text, shown", [
    ('min_free_space = "lots"\n', '"lots"'), ("min_free_space = -5\n", "-5"),
    ("min_free_space = true\n", "(a boolean)"), ("min_free_space = 1.5\n", "(a float)"),
])
def test_an_invalid_min_free_space_is_refused(tmp_path: Path, text, shown):
    with pytest.raises(ConfigError) as exc:
        main_config(tmp_path, text)
    assert str(exc.value) == (
        f"config file {tmp_path / 'configuration.toml'}: invalid min_free_space {shown}: give a "
        'size such as "1GiB" or "500MB", or a number of bytes (0 turns the reserve off)')


@pytest.mark.parametrize("text, size, age", [
    ('cache_max_size = "5GiB"\ncache_max_age = "7d"\n', 5 << 30, 7 * 86400),
    ("cache_max_size = 0\ncache_max_age = 3600\n", 0, 3600),
    ('cache_max_age = "90m"\n', None, 5400), ("debug = true\n", None, None),
])
def test_the_build_cache_limits_are_a_size_and_a_duration(tmp_path: Path, text, size, age):
    main = main_config(tmp_path, text)
    assert (main.cache_max_size, main.cache_max_age) == (size, age)


def test_an_invalid_cache_max_age_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError) as exc:
        main_config(tmp_path, 'cache_max_age = "soon"\n')
    assert "invalid cache_max_age \"soon\"" in str(exc.value)


def test_the_build_cache_keeps_30_days_by_default(tmp_path: Path):
    default = resolve(tmp_path, MainConfig(), StorageConfig())
    assert (default.cache_max_size, default.cache_max_age) == (None, 30 * 86400)


def test_the_free_space_reserve_defaults_to_1_gib_and_names_its_setting(tmp_path: Path):
    default = resolve(tmp_path, MainConfig(), StorageConfig())
    assert default.space_reserve() == SpaceReserve(
        1 << 30, f"min_free_space in {tmp_path / 'configuration.toml'}")
    assert resolve(tmp_path, MainConfig(min_free_space=0), StorageConfig()).min_free_space == 0
