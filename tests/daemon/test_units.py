"""Pure pieces of the daemon: size formatting, the signature policy, the config readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from isula_build.daemon.config import load_file_config
from isula_build.daemon.handlers.images import format_size
from isula_build.errors import ConfigError
from isula_build.registry.settings import PolicyRequirement, SignaturePolicy


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
