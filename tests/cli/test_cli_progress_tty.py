"""--progress with the real client on a real pseudo-terminal, against the real daemon.

On a terminal (auto or tty) the client draws live progress in place — a line per blob with
bytes done of total and a speed, each step's time, the build's total — and the final lines are
still there; quiet prints only the final line; plain on a terminal prints exactly the lines it
prints into a pipe (the original's, which scripts parse).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

# Real registries on 127.0.0.1 (the registry tests' fixtures, reused as they are).
from tests.registry.conftest import plain_registry, registry_factory  # noqa: F401

ESC = "\x1b["
# A frame of a blob: "sha256:<12 hex>  [====>   ]  1.05 MB / 2.13 MB"
FRAME = re.compile(r"sha256:[0-9a-f]{12}  \[[=> ]{20}\]  [\d.]+ [KMGT]?B / [\d.]+ [KMGT]?B")
DONE = re.compile(r"Copied blob sha256:[0-9a-f]{12}: [\d.]+ [KMGT]?B in [\d.]+s "
                  r"\([\d.]+ [KMGT]?B/s\)")


def run_in_pty(daemon, *args: str, columns: int = 150) -> tuple[int, str]:
    """Runs `isula-build --host … ARGS` with stdout and stderr on a new pseudo-terminal;
    returns the exit code and everything written there (newlines as \\n)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "ISULABUILD_CONFIG_DIR": str(daemon.config_dir), "TERM": "xterm"}
    process = subprocess.Popen(
        [sys.executable, "-m", "isula_build.cli.main", "--host", daemon.host, *args],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError as exc:  # EIO: every writer of the terminal has gone
            if exc.errno != errno.EIO:
                raise
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = process.wait(timeout=120)
    return code, b"".join(chunks).decode().replace("\r\n", "\n")


def screen_lines(output: str) -> list[str]:
    """The lines that stay on the screen: the live region erased and redrawn in place
    ("\\x1b[NA\\r\\x1b[J": N lines up, erase below) is taken away as a terminal would."""
    lines: list[str] = []
    for part in re.split(r"(\x1b\[\d+A\r\x1b\[J)", output):
        up = re.fullmatch(r"\x1b\[(\d+)A\r\x1b\[J", part)
        if up:
            del lines[len(lines) - int(up.group(1)):]
        else:
            lines.extend(part.split("\n")[:-1] if part.endswith("\n") else part.split("\n"))
    return [line for line in lines if line]


@pytest.fixture
def imported(client, busybox_tar: Path) -> Path:
    client("ctr-img", "import", str(busybox_tar), "busybox:latest")
    return busybox_tar


def test_save_and_load_draw_blob_progress_in_place(daemon, client, imported: Path,
                                                   tmp_path: Path) -> None:
    diff_id = "sha256:" + hashlib.sha256(imported.read_bytes()).hexdigest()
    code, out = run_in_pty(daemon, "ctr-img", "save", "busybox", "-o", str(tmp_path / "a.tar"))
    assert code == 0, out
    assert ESC in out and FRAME.search(out), out
    assert DONE.search(out) and "2.13 MB in" in out
    lines = screen_lines(out)
    # The plain lines are all there, in order, and the final line last.
    plain = client("ctr-img", "save", "busybox", "-o", str(tmp_path / "b.tar")).stdout
    assert [line for line in lines if not line.startswith("Copied blob")] == plain.splitlines()
    assert lines[-1] == "Save success with image: busybox"
    assert lines.index(f"Copying blob {diff_id}") < \
        next(n for n, line in enumerate(lines) if line.startswith("Copied blob"))

    client("ctr-img", "rm", "busybox")
    code, out = run_in_pty(daemon, "ctr-img", "load", "-i", str(tmp_path / "a.tar"))
    assert code == 0, out
    assert FRAME.search(out) and DONE.search(out), out
    assert screen_lines(out)[-1].startswith("Loaded image as ")


def test_import_tty_shows_the_tarball_and_the_final_line(daemon, busybox_tar: Path) -> None:
    code, out = run_in_pty(daemon, "ctr-img", "import", str(busybox_tar), "bb:tty")
    assert code == 0, out
    # Until the tarball is read its digest is unknown: the live line says "blob".
    assert re.search(r"blob  \[[=> ]{20}\]  [\d.]+ [KMGT]?B / 2.13 MB", out), out
    assert DONE.search(out)
    assert re.fullmatch(r'Import success with image id: "[0-9a-f]{64}"', screen_lines(out)[-1])


def test_build_tty_shows_step_times_and_the_total(daemon, client, imported: Path,
                                                  tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN sleep 0.5\nRUN echo built\n")
    code, out = run_in_pty(daemon, "ctr-img", "build", "--progress=tty", "-t", "app:1",
                           str(context))
    assert code == 0, out
    lines = screen_lines(out)
    steps = [n for n, line in enumerate(lines) if line.startswith("STEP ")]
    done = [n for n, line in enumerate(lines) if re.fullmatch(r" ---> Done in [\d.]+s", line)]
    assert len(steps) == len(done) == 3
    # Each step's time right after its output, before the next step.
    assert all(s < d for s, d in zip(steps, done)) and all(d < s for d, s in zip(done, steps[1:]))
    assert float(lines[done[1]].split()[-1][:-1]) >= 0.5   # RUN sleep 0.5
    assert "built" in lines
    # The running step was drawn with its clock while it ran.
    assert re.search(r"STEP  2: RUN sleep 0\.5  [\d.]+s\n", out), out
    assert re.fullmatch(r"Total time: [\d.]+s", lines[-2])
    assert re.fullmatch(r"Build success with image id: [0-9a-f]{64}", lines[-1])


def test_pull_and_push_tty_show_bytes_and_speed(daemon_factory, client_factory, plain_registry,
                                                busybox_tar: Path) -> None:
    daemon = daemon_factory("reg")
    (daemon.config_dir / "registries.toml").write_text(
        f'[registries.insecure]\nregistries = ["{plain_registry.host}"]\n')
    daemon.start()
    client = client_factory(daemon)
    name = f"{plain_registry.host}/tty/bb:1"
    client("ctr-img", "import", str(busybox_tar), name)
    code, out = run_in_pty(daemon, "ctr-img", "push", name)
    assert code == 0, out
    assert FRAME.search(out) and DONE.search(out), out
    assert screen_lines(out)[-1] == f"Push success with image: {name}"

    client("ctr-img", "rm", name)
    code, out = run_in_pty(daemon, "ctr-img", "pull", name)
    assert code == 0, out
    # The compressed blob's bytes, against its size in the manifest.
    assert FRAME.search(out) and DONE.search(out), out
    assert "/ 2.13 MB" not in out
    assert screen_lines(out)[-1] == f"Pull success with image: {name}"

    client("ctr-img", "rm", name)
    code, out = run_in_pty(daemon, "ctr-img", "pull", "--progress=quiet", name)
    assert (code, out) == (0, f"Pull success with image: {name}\n")


def test_quiet_prints_only_the_final_line(daemon, client, imported: Path,
                                          tmp_path: Path) -> None:
    code, out = run_in_pty(daemon, "ctr-img", "save", "--progress=quiet", "busybox", "-o",
                           str(tmp_path / "q.tar"))
    assert (code, out) == (0, "Save success with image: busybox\n")
    code, out = run_in_pty(daemon, "ctr-img", "import", "--progress=quiet", str(imported))
    assert code == 0 and re.fullmatch(r'Import success with image id: "[0-9a-f]{64}"\n', out), out
    client("ctr-img", "rm", "busybox")
    code, out = run_in_pty(daemon, "ctr-img", "load", "--progress=quiet", "-i",
                           str(tmp_path / "q.tar"))
    assert code == 0 and re.fullmatch(r"Loaded image as [0-9a-f]{64}\n", out), out
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo quiet\n")
    code, out = run_in_pty(daemon, "ctr-img", "build", "--progress=quiet", str(context))
    assert code == 0 and re.fullmatch(r"Build success with image id: [0-9a-f]{64}\n", out), out
    # Errors still show.
    code, out = run_in_pty(daemon, "ctr-img", "save", "--progress=quiet", "nothing:here", "-o",
                           str(tmp_path / "none.tar"))
    assert code == 1 and "nothing:here" in out


def test_plain_on_a_terminal_prints_the_plain_lines(daemon, client, imported: Path,
                                                    tmp_path: Path) -> None:
    code, out = run_in_pty(daemon, "ctr-img", "save", "--progress=plain", "busybox", "-o",
                           str(tmp_path / "p.tar"))
    piped = client("ctr-img", "save", "busybox", "-o", str(tmp_path / "piped.tar")).stdout
    assert code == 0 and out == piped and ESC not in out
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo plain\n")
    code, out = run_in_pty(daemon, "ctr-img", "build", "--progress=plain", "--no-cache",
                           str(context))
    piped = client("ctr-img", "build", "--no-cache", str(context)).stdout
    ids = re.compile(r"[0-9a-f]{64}")
    assert code == 0 and ESC not in out and "Done in" not in out
    assert ids.sub("ID", out) == ids.sub("ID", piped)


def test_not_a_terminal_gets_no_progress(client, imported: Path, tmp_path: Path) -> None:
    for mode in ([], ["--progress=auto"]):
        out = client("ctr-img", "save", *mode, "busybox", "-o", str(tmp_path / f"{len(mode)}.tar"))
        assert ESC not in out.stdout and "Copied blob" not in out.stdout
        assert out.stdout.splitlines()[-1] == "Save success with image: busybox"
