"""RUN in a real runc container on a real overlay mount of a busybox root filesystem."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from isula_build.builder.mounts import OverlayMount
from isula_build.builder.runtime import (DEFAULT_CAPABILITIES, DEFAULT_PATH, BindMount, RunSpec,
                                       capability_mask, remove_stale_containers, run_container)
from isula_build.builder.users import resolve_user
from isula_build.errors import Cancelled, InvalidArgument, IsulaBuildError, RunError

Lister = Callable[[Path], list[str]]
Mounted = Callable[[], list[str]]
DOCKER_DEFAULT_CAPEFF = 0xA80425FB  # what `docker run busybox grep CapEff /proc/self/status` shows


def sh(stage, script: str, **spec_fields) -> list[str]:
    """Run ``/bin/sh -c script`` in the stage; the lines it printed."""
    lines: list[str] = []
    spec = RunSpec(args=["/bin/sh", "-c", script], **spec_fields)
    run_container("runc", stage.rootfs, spec, stage.bundle, lines.append, None, state_root=stage.state_root)
    return lines


def status_field(lines: list[str], name: str) -> str:
    return [l for l in lines if l.startswith(name + ":")][0].split(":", 1)[1].strip()


def test_output_is_streamed_line_by_line_as_it_comes(stage) -> None:
    seen: list[tuple[float, str]] = []
    spec = RunSpec(args=["/bin/sh", "-c", "echo first; sleep 0.2; echo err >&2; sleep 1; printf 'last\\xff'"])
    run_container("runc", stage.rootfs, spec, stage.bundle, lambda l: seen.append((time.monotonic(), l)),
                  None, state_root=stage.state_root)
    # stderr comes through the same stream; a last line without newline and bad UTF-8 too.
    assert [l for _, l in seen] == ["first", "err", "last\ufffd"]
    # "first" reached us while the command was still sleeping, not at its end.
    assert seen[2][0] - seen[0][0] > 0.7


def test_non_zero_exit_names_the_command_and_code(stage) -> None:
    with pytest.raises(RunError) as info:
        sh(stage, "echo bye; exit 3")
    assert str(info.value) == "The command '/bin/sh -c echo bye; exit 3' returned a non-zero code: 3"
    assert isinstance(info.value, IsulaBuildError)


def test_a_runtime_failure_says_why(stage) -> None:
    lines: list[str] = []
    with pytest.raises(RunError, match=r"The command 'no-such-tool --help' could not be run: .*no-such-tool"):
        run_container("runc", stage.rootfs, RunSpec(args=["no-such-tool", "--help"]), stage.bundle,
                      lines.append, None, state_root=stage.state_root)


def test_missing_runtime_is_a_clear_error(stage) -> None:
    with pytest.raises(RunError, match="cannot start OCI runtime '/no/such/runc'"):
        run_container("/no/such/runc", stage.rootfs, RunSpec(args=["true"]), stage.bundle, print, None,
                      state_root=stage.state_root)
    assert not stage.bundle.exists()


def test_writes_land_in_upper_not_lower(stage) -> None:
    sh(stage, "echo hello > /written; mkdir -p /usr/local/x && echo y > /usr/local/x/f; rm /bin/vi")
    assert (stage.upper / "written").read_text() == "hello\n"
    assert (stage.upper / "usr" / "local" / "x" / "f").read_text() == "y\n"
    assert not (stage.lower / "written").exists()
    assert os.path.lexists(stage.lower / "bin" / "vi")
    assert os.lstat(stage.upper / "bin" / "vi").st_rdev == 0  # a whiteout


def test_pid_namespace_shows_only_the_container(stage) -> None:
    script = "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'; ps -o pid,args"
    lines = sh(stage, script)
    assert lines[0] == f"/bin/sh -c {script} "  # pid 1 is the command itself
    # sh, ls and grep at most: not the host's hundreds.
    assert int(lines[1]) <= 4
    assert len(lines[2:]) <= 4 and lines[3].split()[0] == "1"


def test_sys_and_proc_sys_are_read_only_and_root_writes_stay_in_upper(stage) -> None:
    lines = sh(stage, "echo 1 > /proc/sys/kernel/domainname && echo procsys-writable;"
                      "touch /sys/kernel/x && echo sys-writable;"
                      "mkdir /sys/fs/cgroup/pids/x && echo cgroup-writable;"
                      "echo x > /etc/hosts && echo hosts-writable;"
                      "echo done > /root-file; echo end")
    # runc relays stdout and stderr apart: the lines are whole, their order across the two is not sure.
    assert "end" in lines
    assert not any(l.endswith("-writable") for l in lines)
    assert sum("Read-only file system" in l for l in lines) == 4
    assert (stage.upper / "root-file").read_text() == "done\n"


def test_masked_paths_are_unreadable(stage) -> None:
    # The host's files are not empty (this kernel has no /proc/kcore; when there is one it is
    # masked the same way).
    assert Path("/proc/timer_list").read_text() and Path("/proc/interrupts").read_text()
    assert os.listdir("/sys/firmware")
    lines = sh(stage, "wc -c < /proc/timer_list; wc -c < /proc/interrupts; ls -A /sys/firmware | wc -l;"
                      "test -e /proc/kcore && wc -c < /proc/kcore || echo 0")
    assert lines == ["0", "0", "0", "0"]


def test_default_capabilities_are_dockers(stage) -> None:
    lines = sh(stage, "grep Cap /proc/self/status")
    assert int(status_field(lines, "CapEff"), 16) == DOCKER_DEFAULT_CAPEFF
    assert int(status_field(lines, "CapBnd"), 16) == DOCKER_DEFAULT_CAPEFF
    assert int(status_field(lines, "CapInh"), 16) == 0
    assert int(status_field(lines, "CapAmb"), 16) == 0
    assert capability_mask(list(DEFAULT_CAPABILITIES)) == DOCKER_DEFAULT_CAPEFF


def test_cap_add_grants_the_capability(stage) -> None:
    lines = sh(stage, "grep CapEff /proc/self/status; mkdir /m; mount -t tmpfs t /m && echo mounted",
               cap_add=["SYS_ADMIN", "cap_net_admin"])
    eff = int(status_field(lines, "CapEff"), 16)
    assert eff == DOCKER_DEFAULT_CAPEFF | 1 << 21 | 1 << 12
    assert lines[-1] == "mounted"
    assert "mounted" not in sh(stage, "mount -t tmpfs t /m 2>/dev/null && echo mounted; true")


def test_unknown_capability_is_refused_before_running(stage) -> None:
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_NOPE"'):
        sh(stage, "true", cap_add=["CAP_NOPE"])
    assert not stage.bundle.exists()


def test_non_root_user_has_no_effective_capabilities(stage) -> None:
    lines = sh(stage, "id -u; id -g; grep -E 'CapEff|CapBnd' /proc/self/status",
               user=resolve_user(stage.rootfs, "nobody"))
    assert lines[:2] == ["65534", "65534"]
    # As docker: the bounding set is the default one, but a non-root process holds none of it.
    assert int(status_field(lines, "CapEff"), 16) == 0
    assert int(status_field(lines, "CapBnd"), 16) == DOCKER_DEFAULT_CAPEFF


def test_user_resolution_in_the_container(stage) -> None:
    (stage.rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\nextra:x:777:nobody\n")
    assert sh(stage, "id -u; id -g; id -G", user=resolve_user(stage.rootfs, "nobody")) == \
        ["65534", "65534", "65534 777"]
    assert sh(stage, "id -u; id -g", user=resolve_user(stage.rootfs, "1234:5678")) == ["1234", "5678"]
    assert sh(stage, "id -u; id -g", user=resolve_user(stage.rootfs, "nobody:root")) == ["65534", "0"]
    assert sh(stage, "echo $HOME", user=resolve_user(stage.rootfs, "nobody")) == ["/home"]
    with pytest.raises(IsulaBuildError, match="unable to find user nosuch: no matching entries in passwd"):
        resolve_user(stage.rootfs, "nosuch")


def test_host_network_and_host_files(stage) -> None:
    def interfaces(text: list[str]) -> set[str]:
        return {l.split(":")[0].strip() for l in text[2:]}

    host_net = Path("/proc/net/dev").read_text().splitlines()
    lines = sh(stage, "cat /proc/net/dev")
    assert interfaces(lines) == interfaces(host_net)
    assert sh(stage, "cat /etc/hosts") == Path("/etc/hosts").read_text().splitlines()
    assert sh(stage, "cat /etc/resolv.conf") == Path("/etc/resolv.conf").read_text().splitlines()


def test_workdir_env_and_hostname(stage) -> None:
    lines = sh(stage, 'pwd; echo "$FOO|$EMPTY|$PATH"; hostname', cwd="/tmp",
               env=["FOO=bar baz", "EMPTY="], hostname="builder")
    assert lines == ["/tmp", f"bar baz||{DEFAULT_PATH}", "builder"]
    assert sh(stage, "echo $PATH", env=["PATH=/bin"]) == ["/bin"]


def test_extra_bind_mount_is_visible_but_not_in_the_layer(stage, tmp_path: Path) -> None:
    src = tmp_path / "ctx"
    src.mkdir()
    (src / "in").write_text("from host\n")
    lines = sh(stage, "cat /ctx/in; touch /ctx/new 2>/dev/null || echo ro",
               mounts=[BindMount(src, "/ctx")])
    assert lines == ["from host", "ro"]
    assert not (stage.upper / "ctx").exists()
    assert not (src / "new").exists()


def test_nothing_is_left_behind(stage, runc_containers: Lister, mounted_paths: Mounted) -> None:
    lower_etc = os.stat(stage.lower / "etc")
    sh(stage, "true")
    assert runc_containers(stage.state_root) == []
    assert not stage.bundle.exists()
    assert not any(p.startswith(str(stage.rootfs) + "/") for p in mounted_paths())
    # busybox has no /etc/hosts nor /etc/resolv.conf: runc made mount points, we removed them,
    # and /etc (copied up when they were made) looks as in the image again.
    assert sorted(p.relative_to(stage.upper).as_posix() for p in stage.upper.rglob("*")) == ["etc"]
    upper_etc = os.stat(stage.upper / "etc")
    assert (upper_etc.st_mtime_ns, upper_etc.st_mode, upper_etc.st_uid) == \
        (lower_etc.st_mtime_ns, lower_etc.st_mode, lower_etc.st_uid)
    assert not (stage.rootfs / "etc" / "hosts").exists()


def test_image_files_under_mount_points_are_kept(stage) -> None:
    # An image with its own /etc/hosts: the bind mount covers it during RUN, and nothing changes.
    (stage.rootfs / "etc" / "hosts").write_text("image hosts\n")
    sh(stage, "true")
    assert (stage.rootfs / "etc" / "hosts").read_text() == "image hosts\n"
    # A command writing under a new mount point's parent keeps its file.
    sh(stage, "echo kept > /etc/added")
    assert (stage.upper / "etc" / "added").read_text() == "kept\n"
    assert not (stage.upper / "etc" / "resolv.conf").exists()


def test_cancel_kills_the_container_promptly(stage, runc_containers: Lister, mounted_paths: Mounted) -> None:
    cancel = threading.Event()
    started = threading.Event()

    def output(line: str) -> None:
        if line == "sleeping":
            started.set()

    def cancel_soon() -> None:
        started.wait(10)
        cancel.set()

    threading.Thread(target=cancel_soon, daemon=True).start()
    begin = time.monotonic()
    with pytest.raises(Cancelled):
        run_container("runc", stage.rootfs, RunSpec(args=["/bin/sh", "-c", "echo sleeping; sleep 1000"]),
                      stage.bundle, output, cancel, state_root=stage.state_root)
    assert started.is_set()
    assert time.monotonic() - begin < 5
    assert runc_containers(stage.state_root) == []
    assert not stage.bundle.exists()
    assert not any(p.startswith(str(stage.rootfs) + "/") for p in mounted_paths())


def test_cancel_before_the_container_exists(stage, runc_containers: Lister) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        run_container("runc", stage.rootfs, RunSpec(args=["sleep", "1000"]), stage.bundle, print, cancel,
                      state_root=stage.state_root)
    assert runc_containers(stage.state_root) == []


def test_concurrent_runs_get_distinct_containers(busybox_lower: Path, tmp_path: Path,
                                                 runc_containers: Lister) -> None:
    state = tmp_path / "runc"
    errors: list[BaseException] = []
    seen: list[str] = []

    def one(i: int) -> None:
        d = tmp_path / str(i)
        try:
            with OverlayMount([busybox_lower], d / "u", d / "w", d / "m"):
                out: list[str] = []
                spec = RunSpec(args=["/bin/sh", "-c", f"sleep 0.3; echo {i} > /n; cat /n"])
                run_container("runc", d / "m", spec, d / "bundle", out.append, None, state_root=state)
                seen.extend(out)
            assert (d / "u" / "n").read_text() == f"{i}\n"
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(seen, key=int) == [str(i) for i in range(16)]
    assert runc_containers(state) == []


def test_true_run_timing(busybox_lower: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Wall time of a whole `RUN true`: overlay mount, runc, cleanup, unmount (reported, loosely bounded)."""
    times = []
    for i in range(20):
        d = tmp_path / str(i)
        start = time.monotonic()
        with OverlayMount([busybox_lower], d / "u", d / "w", d / "m"):
            run_container("runc", d / "m", RunSpec(args=["true"]), d / "bundle", print, None,
                          state_root=tmp_path / "runc")
        times.append(time.monotonic() - start)
    times.sort()
    with capsys.disabled():
        print(f"\nRUN true x20: min {times[0] * 1000:.1f} ms, median {times[10] * 1000:.1f} ms, "
              f"max {times[-1] * 1000:.1f} ms")
    assert times[10] < 1.0


def test_containers_of_a_dead_daemon_are_swept(stage, runc_containers: Lister) -> None:
    # A "daemon" that dies by SIGKILL in the middle of a RUN leaves runc and its container running.
    script = (
        "import sys; from pathlib import Path; from isula_build.builder.runtime import RunSpec, run_container;"
        "run_container('runc', Path(sys.argv[1]), RunSpec(args=['sleep', '1000']), Path(sys.argv[2]),"
        " lambda l: None, None, state_root=Path(sys.argv[3]))"
    )
    daemon = subprocess.Popen([sys.executable, "-c", script, str(stage.rootfs), str(stage.bundle),
                               str(stage.state_root)])
    deadline = time.monotonic() + 10
    while not runc_containers(stage.state_root) and time.monotonic() < deadline:
        time.sleep(0.05)
    [orphan] = runc_containers(stage.state_root)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    assert runc_containers(stage.state_root) == [orphan]
    assert remove_stale_containers("runc", stage.state_root) == [orphan]
    assert runc_containers(stage.state_root) == []
    assert remove_stale_containers("runc", stage.state_root / "never-made") == []
