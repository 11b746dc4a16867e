"""The corpus: one directory a case under cases/, read into `Case`s, and their build contexts.

A case is `cases/<name>/Dockerfile` plus context files and an optional `case.json`:

    {
      "build_args": {"K": "v"},          # --build-arg for both builders
      "target": "stage",                 # --target for both builders
      "secrets": {"tok": "value"},       # --secret id=tok,src=FILE holding value, for both
      "url_server": true,                # serve cases/<name>/www on 127.0.0.1; build arg URL_BASE
      "docker_dockerfile": "Dockerfile.docker",  # docker builds this equivalent file instead
      "docker_dockerfile_reason": "...",  #   (required with it: why docker cannot build ours)
      "setup": {                         # made in the prepared context (git keeps none of these)
        "chmod": {"path": "0600"}, "dirs": ["empty"], "symlinks": {"link": "target"},
        "hardlinks": {"link": "target"},
        "archives": [{"name": "a.tar.gz", "from": "srcdir", "compression": "gz",
                      "uid": 0, "gid": 0}]
      },
      "differences": [ ... ]             # differences we keep on purpose, each with "reason";
    }                                    # see compare.py for their shape

Contexts are copied into a scratch directory and normalised there (files 0644 or 0755 when
executable, directories 0755, then `setup`), so a checkout's umask cannot change a result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
EXPECTED_DIR = HERE / "expected"
CASE_FILE = "case.json"
URL_ARG = "URL_BASE"
# Fixed mtime for generated archives, so their bytes (and the cache key) never vary.
ARCHIVE_MTIME = 1577836800


@dataclass(frozen=True)
class Case:
    name: str
    dir: Path
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    url_server: bool = False
    docker_dockerfile: str = "Dockerfile"
    differences: tuple[dict[str, Any], ...] = ()
    setup: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def expected_path(self) -> Path:
        return EXPECTED_DIR / f"{self.name}.json"


def load_case(path: Path) -> Case:
    spec: dict[str, Any] = {}
    if (path / CASE_FILE).exists():
        spec = json.loads((path / CASE_FILE).read_text())
    known = {"build_args", "target", "secrets", "url_server", "docker_dockerfile",
             "docker_dockerfile_reason", "setup", "differences", "description"}
    unknown = set(spec) - known
    assert not unknown, f"{path / CASE_FILE}: unknown keys {sorted(unknown)}"
    if "docker_dockerfile" in spec:
        assert spec.get("docker_dockerfile_reason"), f"{path}: docker_dockerfile needs a reason"
    for diff in spec.get("differences", []):
        assert diff.get("reason"), f"{path}: every kept difference needs a reason: {diff}"
    return Case(
        name=path.name, dir=path,
        build_args=dict(spec.get("build_args", {})),
        target=str(spec.get("target", "")),
        url_server=bool(spec.get("url_server", False)),
        docker_dockerfile=spec.get("docker_dockerfile", "Dockerfile"),
        differences=tuple(spec.get("differences", [])),
        setup=dict(spec.get("setup", {})),
        secrets=dict(spec.get("secrets", {})),
    )


def secret_flags(case: Case, work: Path) -> list[str]:
    """The --secret flags of the case, each value in a file under `work` (outside the context)."""
    flags = []
    for ident, value in case.secrets.items():
        path = work / f"secret-{ident}"
        path.write_text(value)
        flags += ["--secret", f"id={ident},src={path}"]
    return flags


def all_cases() -> list[Case]:
    return [load_case(p) for p in sorted(CASES_DIR.iterdir()) if (p / "Dockerfile").exists()]


def content_key(case: Case, *extra: str) -> str:
    """A hash of everything that decides a case's docker result (files, modes, links)."""
    h = hashlib.sha256()
    for s in extra:
        h.update(s.encode() + b"\0")
    for path in sorted(case.dir.rglob("*")):
        rel = path.relative_to(case.dir).as_posix()
        if path.is_symlink():
            h.update(f"L {rel} {os.readlink(path)}\0".encode())
        elif path.is_file():
            h.update(f"F {rel} {os.access(path, os.X_OK)}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
        elif path.is_dir():
            h.update(f"D {rel}\0".encode())
    return h.hexdigest()


def prepare_context(case: Case, dest: Path) -> Path:
    """Copies the case into `dest` (created), normalises modes and applies `setup`."""
    shutil.copytree(case.dir, dest, symlinks=True)
    for path in [dest, *dest.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if os.access(path, os.X_OK) else 0o644)
    setup = case.setup
    for rel in setup.get("dirs", []):
        (dest / rel).mkdir(parents=True, exist_ok=True)
        (dest / rel).chmod(0o755)
    for rel, target in setup.get("symlinks", {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, dest / rel)
    for rel, target in setup.get("hardlinks", {}).items():
        os.link(dest / target, dest / rel)
    for rel, mode in setup.get("chmod", {}).items():
        (dest / rel).chmod(int(mode, 8))
    # Archives last, so that they hold the modes set above.
    for spec in setup.get("archives", []):
        _make_archive(dest / spec["from"], dest / spec["name"], spec.get("compression", ""),
                      int(spec.get("uid", 0)), int(spec.get("gid", 0)))
    return dest


def _make_archive(src: Path, out: Path, compression: str, uid: int, gid: int) -> None:
    """A reproducible tar of `src`'s contents (names relative to it) with fixed owner and time."""
    def fix(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
        info.mtime = ARCHIVE_MTIME
        return info

    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(out, mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=path.relative_to(src).as_posix(), recursive=False, filter=fix)
