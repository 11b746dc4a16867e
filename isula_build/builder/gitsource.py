"""ADD of a git repository: a checkout made with the system's git, for the copier to copy.

The repository is cloned without a checkout, the fragment's ref resolved (a branch of the
remote, then a tag, then a commit or its abbreviation; none: the remote's HEAD) and that commit
checked out detached; the .git directory is removed unless --keep-git-dir. The commit is what
the step's cache key is made of. git runs with a fixed, minimal configuration: no prompt for
credentials, no system or global config, only the network protocols a Dockerfile may name
(never file://, which would read the daemon's own disk), ssh in batch mode.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from isula_build.builder.rootpath import resolve_in_root
from isula_build.dockerfile.sources import GitSource
from isula_build.errors import FailedPrecondition, InvalidArgument
from isula_build.store.fsutil import delete_tree

DEFAULT_TIMEOUT = 600.0        # seconds for each git command


@dataclass(frozen=True)
class Checkout:
    root: Path          # the work tree (its .git removed unless kept)
    commit: str         # the full commit ID checked out
    subdir: str         # what to copy, relative to root ("." for all)


def _env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ALLOW_PROTOCOL": "http:https:git:ssh",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            "LC_ALL": "C"}


def _git(args: list[str], cwd: Path, env: dict[str, str], what: str,
         timeout: float) -> str | None:
    """Runs git; its stdout, or None when it failed (the caller words the error)."""
    try:
        done = subprocess.run(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InvalidArgument(f"{what}: git took more than {timeout:g}s") from None
    return done.stdout.strip() if done.returncode == 0 else None


def checkout(source: GitSource, folder: Path, keep_git_dir: bool,
             timeout: float = DEFAULT_TIMEOUT) -> Checkout:
    """Clones `source` into the new directory `folder` and checks its ref out."""
    what = f"ADD {source.remote}"
    if source.ref.startswith("-"):
        raise InvalidArgument(f"{what}: invalid ref {source.ref!r}")
    if shutil.which("git") is None:
        raise FailedPrecondition(f"{what}: ADD of a git repository needs git installed on the "
                                 "daemon's host")
    folder.mkdir(mode=0o700)
    env = _env(folder)
    tree = folder / "tree"
    try:
        done = subprocess.run(["git", "clone", "--quiet", "--no-checkout", "--", source.remote,
                               str(tree)], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InvalidArgument(f"{what}: git clone took more than {timeout:g}s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1].removeprefix("fatal: ") if lines else f"exit status {done.returncode}"
        raise InvalidArgument(f"{what}: the repository cannot be cloned: {reason}")
    commit = None
    ref = source.ref
    candidates = [f"refs/remotes/origin/{ref}", f"refs/tags/{ref}", ref] if ref else ["HEAD"]
    for name in candidates:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], tree, env,
                      what, timeout)
        if commit:
            break
    if not commit:
        raise InvalidArgument(f"{what}: no branch, tag or commit {ref or 'HEAD'} in the "
                              "repository")
    if _git(["checkout", "--quiet", "--detach", commit], tree, env, what, timeout) is None:
        raise InvalidArgument(f"{what}: cannot check out {commit}")
    if not keep_git_dir:
        delete_tree(tree / ".git")
    subdir = source.subdir or "."
    if not os.path.isdir(resolve_in_root(tree, subdir)):
        raise InvalidArgument(f"{what}: {source.subdir} is not a directory of {ref or 'HEAD'}")
    return Checkout(tree, commit, subdir)


__all__ = ["Checkout", "checkout"]
