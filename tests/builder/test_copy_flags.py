"""COPY/ADD flags through the engine (real store, overlayfs, runc): --parents, --exclude,
--link, ADD --checksum, --unpack, git sources, and the cache keys of ADD's remote sources.

docker 20.10's BuildKit has none of these flags (its built-in frontend refuses them as unknown
flags), so the expected trees below pin BuildKit's Dockerfile reference instead.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from isula_build.builder.executor import BuildRun, StepExecutor
from isula_build.builder.config import StageConfig
from isula_build.dockerfile import DockerfileError, parse_dockerfile
from isula_build.errors import InvalidArgument, IsulaBuildError

from tests.builder.differential.urlserver import serve
from tests.builder.test_build_cache import USING, CachedEngine, cengine  # noqa: F401
from tests.builder.test_executor import STATIC, Engine, engine, write  # noqa: F401


def top_layer(engine: Engine | CachedEngine, image_id: str) -> dict[str, tarfile.TarInfo]:
    record = engine.store.lookup(image_id)
    with tarfile.open(engine.store.layer_blob_path(record.layers[-1].diff_id)) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def files_under(layer: dict[str, tarfile.TarInfo], prefix: str) -> set[str]:
    return {name for name, m in layer.items() if name.startswith(prefix + "/") and not m.isdir()}


def read_member(engine: Engine | CachedEngine, image_id: str, name: str) -> bytes:
    record = engine.store.lookup(image_id)
    with tarfile.open(engine.store.layer_blob_path(record.layers[-1].diff_id)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


# --- COPY --parents -------------------------------------------------------------------------


def test_parents_keep_the_path_and_the_pivot_cuts_it(engine: Engine) -> None:
    ctx = write(engine.root / "ctx", {"x/a.txt": "xa", "y/a.txt": "ya", "x/y/b.txt": "b",
                                      "x/y/c.md": "c", "x/y/deep/d.txt": "d", "z/no.txt": "z"})
    os.chmod(ctx / "x", 0o750)
    image = engine.build("FROM busybox\n"
                         "COPY --parents ./x/a.txt ./y/a.txt /p1/\n"
                         "COPY --parents ./x/./y/*.txt /p2/\n"
                         "COPY --parents x/y /p3\n"
                         "COPY --parents x/./y/ /p4/\n", ctx, build_time=STATIC)
    layer = top_layer(engine, image)
    # The Dockerfile reference's examples: the whole path, or what follows the pivot.
    assert files_under(layer, "p1") == {"p1/x/a.txt", "p1/y/a.txt"}
    assert files_under(layer, "p2") == {"p2/y/b.txt"}
    assert files_under(layer, "p3") == {"p3/x/y/b.txt", "p3/x/y/c.md", "p3/x/y/deep/d.txt"}
    assert files_under(layer, "p4") == {"p4/y/b.txt", "p4/y/c.md", "p4/y/deep/d.txt"}
    # A parent directory is the source's: its mode, root's owner.
    assert layer["p1/x"].mode & 0o7777 == 0o750 and layer["p1/y"].mode & 0o7777 == 0o755
    assert (layer["p1/x"].uid, layer["p1/x"].gid) == (0, 0)
    # Without --parents, the two a.txt would land on one another.
    plain = engine.build("FROM busybox\nCOPY ./x/a.txt ./y/a.txt /np/\n", ctx, build_time=STATIC)
    assert files_under(top_layer(engine, plain), "np") == {"np/a.txt"}


def test_parents_from_a_stage_and_bad_pivots(engine: Engine) -> None:
    ctx = write(engine.root / "ctx", {"f.txt": "f"})
    image = engine.build("FROM busybox AS src\n"
                         "RUN mkdir -p /srv/app/conf && echo c > /srv/app/conf/c.ini && "
                         "echo o > /srv/app/other\n"
                         "FROM busybox\n"
                         "COPY --from=src --parents /srv/./app/conf/*.ini /etc/\n", ctx,
                         build_time=STATIC)
    assert files_under(top_layer(engine, image), "etc/app") == {"etc/app/conf/c.ini"}
    with pytest.raises(InvalidArgument) as err:
        engine.build("FROM busybox\nCOPY --parents ./f.txt/./x /d/\n", ctx)
    assert err.value.line == 2 and "is not a directory" in str(err.value)
    with pytest.raises(IsulaBuildError) as err2:
        engine.build("FROM busybox\nCOPY --parents ./nothing/*.txt /d/\n", ctx)
    assert err2.value.line == 2 and "no source files were specified" in str(err2.value)


# --- --exclude ------------------------------------------------------------------------------


def test_exclude_patterns_are_relative_to_the_source(engine: Engine) -> None:
    ctx = write(engine.root / "ctx", {"dir/a.txt": "a", "dir/b.md": "b", "dir/keep.md": "k",
                                      "dir/sub/c.txt": "c", "dir/sub/d.md": "d",
                                      "home.txt": "h", "homedir/e.txt": "e", "homedir/f.c": "f"})
    image = engine.build("FROM busybox\n"
                         "COPY --exclude=*.md --exclude=!keep.md dir /e1/\n"
                         "COPY --exclude=**/*.md dir /e2/\n"
                         "COPY --exclude=*.txt hom* /e3/\n"
                         "ADD --exclude=sub dir /e4/\n"
                         "COPY --parents --exclude=dir/sub ./dir /e5/\n", ctx,
                         build_time=STATIC)
    layer = top_layer(engine, image)
    assert files_under(layer, "e1") == {"e1/a.txt", "e1/keep.md", "e1/sub/c.txt", "e1/sub/d.md"}
    assert files_under(layer, "e2") == {"e2/a.txt", "e2/sub/c.txt"}
    # The reference's example: `COPY --exclude=*.txt hom* /mydir/` leaves out home.txt (and,
    # inside the matched directory, what matches relative to it).
    assert files_under(layer, "e3") == {"e3/f.c"}
    assert files_under(layer, "e4") == {"e4/a.txt", "e4/b.md", "e4/keep.md"}
    assert "e4/sub" not in layer
    assert files_under(layer, "e5") == {"e5/dir/a.txt", "e5/dir/b.md", "e5/dir/keep.md"}


def test_a_changed_excluded_file_keeps_the_cache_hit(cengine: CachedEngine) -> None:
    ctx = write(cengine.root / "ctx", {"src/a.c": "a", "src/notes.md": "1"})
    dockerfile = "FROM busybox\nCOPY --exclude=*.md src /src/\nCOPY src /all/\n"
    cengine.build(dockerfile, ctx, build_time=STATIC)
    (ctx / "src" / "notes.md").write_text("2")
    cengine.build(dockerfile, ctx, build_time=STATIC)
    # The first COPY does not take notes.md: served; the second does: it misses, naming it.
    assert cengine.lines.count(USING) == 1
    assert cengine.misses() == ["cache miss: file src/notes.md changed"]
    (ctx / "src" / "a.c").write_text("changed")
    cengine.build(dockerfile, ctx, build_time=STATIC)
    assert cengine.misses() == ["cache miss: file src/a.c changed"]


# --- --link ---------------------------------------------------------------------------------


def test_link_copies_into_a_root_of_its_own(engine: Engine) -> None:
    ctx = write(engine.root / "ctx", {"a.txt": "A"})
    base = ("FROM busybox\nRUN mkdir /real && ln -s /real /lnk && mkdir -m 0700 /tight\n")
    plain = engine.build(base + "COPY a.txt /lnk/a.txt\nCOPY a.txt /tight/a.txt\n", ctx,
                         build_time=STATIC)
    linked = engine.build(base + "COPY --link a.txt /lnk/a.txt\n"
                                 "COPY --link --chown=7:8 a.txt /tight/a.txt\n", ctx,
                          build_time=STATIC)
    follows = top_layer(engine, plain)
    assert "real/a.txt" in follows and follows["lnk"].issym()
    # BuildKit's --link: the destination path is made of directories only; a symlink of the
    # layers below is not followed but replaced, and the directories on the way are the
    # layer's own (0755, root), over whatever the base had there.
    own = top_layer(engine, linked)
    assert "real/a.txt" not in own and own["lnk"].isdir() and "lnk/a.txt" in own
    assert own["tight"].mode & 0o777 == 0o755
    assert (own["tight/a.txt"].uid, own["tight/a.txt"].gid) == (7, 8)
    assert read_member(engine, linked, "lnk/a.txt") == b"A"


def _executor(tmp: Path, ctx: Path) -> StepExecutor:
    run = BuildRun(runtime="runc", state_root=tmp / "state", mountopt="", work_dir=tmp,
                   context_dir=ctx, ignore=None, proxy_env={}, cap_add=[],
                   build_time=datetime(2020, 1, 1, tzinfo=timezone.utc), log=lambda line: None,
                   cancel=threading.Event())
    return StepExecutor(run, tmp / "root", StageConfig.scratch(), lambda ref: None)  # type: ignore[arg-type,return-value]  # no --from here


def _steps(dockerfile: str) -> list:  # type: ignore[type-arg]
    plan = parse_dockerfile(dockerfile, {}, None)
    return [step for _, step in enumerate(plan.stages[-1].resolve({}, []))]


def test_a_linked_step_key_does_not_depend_on_the_parent(tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"a.txt": "A"})
    executor = _executor(tmp_path, ctx)
    steps = _steps("FROM busybox\nCOPY --link a.txt /x/\nCOPY a.txt /y/\n"
                   "COPY --link --chown=app a.txt /z/\nCOPY --link a.txt rel/\n")
    linked, plain, named, relative = (executor.key(s, "sha256:" + "1" * 64) for s in steps)
    moved = [executor.key(s, "sha256:" + "2" * 64) for s in steps]
    assert linked is not None and moved[0] is not None
    # The chain key still follows the parent (the next steps see the base's files); the
    # linked step's own key does not, so a changed base can keep its files.
    assert linked.key != moved[0].key and linked.link is not None
    assert linked.link == moved[0].link
    assert plain is not None and plain.link is None
    # Not independent: a user name is looked up below, a relative path follows WORKDIR.
    assert named is not None and named.link is None
    assert relative is not None and relative.link is None
    (ctx / "a.txt").write_text("B")
    changed = executor.key(steps[0], "sha256:" + "1" * 64)
    assert changed is not None and changed.link != linked.link


# --- ADD of URLs: --checksum, --unpack, cache ----------------------------------------------


def _tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    www = tmp_path / "www"
    www.mkdir()
    with serve(www) as url:
        yield www, url


def test_add_checksum_is_checked(engine: Engine, served: tuple[Path, str]) -> None:
    www, url = served
    (www / "f.bin").write_bytes(b"payload")
    good = "sha256:" + hashlib.sha256(b"payload").hexdigest()
    image = engine.build(f"FROM busybox\nADD --checksum={good} {url}/f.bin /f.bin\n",
                         build_time=STATIC)
    assert read_member(engine, image, "f.bin") == b"payload"
    bad = "sha256:" + "0" * 64
    with pytest.raises(InvalidArgument) as err:
        engine.build(f"FROM busybox\nRUN true\nADD --checksum={bad} {url}/f.bin /f.bin\n")
    message = str(err.value)
    assert err.value.line == 3 and message.startswith("Dockerfile line 3: ")
    assert f"expected {bad}" in message and f"got {good}" in message
    # A variable source is judged once expanded.
    with pytest.raises(DockerfileError) as err2:
        engine.build(f"FROM busybox\nARG S=local.txt\nADD --checksum={good} $S /f\n")
    assert err2.value.line == 3 and "is for an http(s) source, not local.txt" in str(err2.value)


def test_add_unpack(engine: Engine, served: tuple[Path, str]) -> None:
    www, url = served
    archive = _tgz({"inner/x.txt": b"x"})
    (www / "a.tar.gz").write_bytes(archive)
    ctx = write(engine.root / "ctx", {})
    (ctx / "local.tar.gz").write_bytes(archive)
    image = engine.build(f"FROM busybox\n"
                         f"ADD {url}/a.tar.gz /remote/\n"
                         f"ADD --unpack=true {url}/a.tar.gz /remote-unpacked/\n"
                         "ADD local.tar.gz /local/\n"
                         "ADD --unpack=false local.tar.gz /local-kept/\n", ctx,
                         build_time=STATIC)
    layer = top_layer(engine, image)
    # BuildKit: a URL is not unpacked unless --unpack=true; a local archive is unless false.
    assert files_under(layer, "remote") == {"remote/a.tar.gz"}
    assert files_under(layer, "remote-unpacked") == {"remote-unpacked/inner/x.txt"}
    assert files_under(layer, "local") == {"local/inner/x.txt"}
    assert files_under(layer, "local-kept") == {"local-kept/local.tar.gz"}


def test_add_of_a_url_is_served_from_the_cache(cengine: CachedEngine,
                                               served: tuple[Path, str]) -> None:
    www, url = served
    (www / "f.txt").write_text("one")
    ctx = write(cengine.root / "ctx", {})
    dockerfile = f"FROM busybox\nADD {url}/f.txt /f.txt\nRUN cat /f.txt\n"
    cengine.build(dockerfile, ctx, build_time=STATIC)
    cengine.build(dockerfile, ctx, build_time=STATIC)
    assert cengine.lines.count(USING) == 2 and "one" not in cengine.lines
    (www / "f.txt").write_text("two")
    cengine.build(dockerfile, ctx, build_time=STATIC)
    assert USING not in cengine.lines and "two" in cengine.lines
    assert cengine.misses() == ["cache miss: the files it copies changed"]


# --- ADD of git repositories ----------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def git_repo(served: tuple[Path, str]) -> tuple[Path, Path, str]:
    """A work repo, its bare copy served over git's dumb http protocol, and the repo URL."""
    www, url = served
    work = www.parent / "work"
    write(work, {"src/main.c": "v1\n", "docs/x.md": "doc\n", "README": "r\n"})
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", ".")
    _git(work, "commit", "-qm", "one")
    _git(work, "tag", "v1")
    (work / "src" / "main.c").write_text("v2\n")
    _git(work, "commit", "-qam", "two")
    _git(www, "clone", "-q", "--bare", str(work), "repo.git")
    _git(www / "repo.git", "update-server-info")
    return work, www / "repo.git", f"{url}/repo.git"


def _push(work: Path, bare: Path, text: str) -> None:
    (work / "src" / "main.c").write_text(text)
    _git(work, "commit", "-qam", text)
    _git(work, "push", "-q", str(bare), "main")
    _git(bare, "update-server-info")


def test_add_git_ref_subdir_and_keep_git_dir(engine: Engine,
                                             git_repo: tuple[Path, Path, str]) -> None:
    work, bare, repo = git_repo
    image = engine.build(f"FROM busybox\n"
                         f"ADD {repo}#v1:src /at-tag/\n"
                         f"ADD {repo} /head\n"
                         f"ADD --keep-git-dir {repo}#main /kept/\n", build_time=STATIC)
    layer = top_layer(engine, image)
    assert files_under(layer, "at-tag") == {"at-tag/main.c"}
    assert read_member(engine, image, "at-tag/main.c") == b"v1\n"
    assert files_under(layer, "head") == {"head/src/main.c", "head/docs/x.md", "head/README"}
    assert read_member(engine, image, "head/src/main.c") == b"v2\n"
    assert "kept/.git/HEAD" in layer and not any(n.startswith("head/.git") for n in layer)
    assert layer["head/README"].uid == 0


def test_add_git_cache_follows_the_commit(cengine: CachedEngine,
                                          git_repo: tuple[Path, Path, str]) -> None:
    work, bare, repo = git_repo
    ctx = write(cengine.root / "ctx", {})
    dockerfile = f"FROM busybox\nADD {repo}#main:src /s/\nRUN cat /s/main.c\n"
    cengine.build(dockerfile, ctx, build_time=STATIC)
    cengine.build(dockerfile, ctx, build_time=STATIC)
    assert cengine.lines.count(USING) == 2
    _push(work, bare, "v3")
    cengine.build(dockerfile, ctx, build_time=STATIC)
    assert USING not in cengine.lines and "v3" in cengine.lines


@pytest.mark.parametrize(("source", "reason"), [
    ("{repo}#nope", "no branch, tag or commit nope in the repository"),
    ("{repo}#main:missing", "missing is not a directory of main"),
    ("{base}/absent.git", "the repository cannot be cloned"),
    ("git@127.0.0.1:absent.git", "the repository cannot be cloned"),
])
def test_a_git_source_that_does_not_resolve(engine: Engine, git_repo: tuple[Path, Path, str],
                                            source: str, reason: str) -> None:
    repo = git_repo[2]
    source = source.format(repo=repo, base=repo.rsplit("/", 1)[0])
    with pytest.raises(InvalidArgument) as err:
        engine.build(f"FROM busybox\nRUN true\nADD {source} /g/\n")
    assert err.value.line == 3 and str(err.value).startswith("Dockerfile line 3: ADD ")
    assert reason in str(err.value)
    assert engine.leftovers() == []


def test_a_linked_copy_keeps_its_hit_when_the_base_changes(cengine: CachedEngine) -> None:
    ctx = write(cengine.root / "ctx", {"a.txt": "A\n"})
    dockerfile = "FROM busybox\nCOPY --link a.txt /app/\nRUN cat /app/a.txt /base\n"
    cengine.build("FROM busybox\nRUN echo one > /base\n", ctx, tag="busybox:latest",
                  build_time=STATIC)
    cengine.build(dockerfile, ctx, build_time=STATIC)
    cengine.build(dockerfile, ctx, build_time=STATIC)
    assert cengine.lines.count(USING) == 2
    snapshots = set(os.listdir(cengine.root / "data" / "cache" / "snapshots"))
    # Another base: the stage's chain misses, but the linked step's own key (StepKey.link)
    # does not depend on it: its snapshot is served as it is, and the RUN after it runs on
    # the new base with the linked files over it.
    cengine.build("FROM busybox\nRUN echo two > /base\n", ctx, tag="busybox:latest",
                  build_time=STATIC)
    served = cengine.build(dockerfile, ctx, build_time=STATIC)
    assert cengine.misses() == []
    step2 = cengine.lines.index("STEP  2: COPY --link a.txt /app/")
    assert cengine.lines[step2 + 1] == USING and cengine.lines.count(USING) == 1
    assert "two" in cengine.lines and "A" in cengine.lines
    now = set(os.listdir(cengine.root / "data" / "cache" / "snapshots"))
    assert len(now - snapshots) == 1    # the new base's RUN's: the linked one was reused
    # The same image as a clean build on the new base.
    assert cengine.build(dockerfile, ctx, build_time=STATIC, no_cache=True) == served
    # A changed file is no hit.
    (ctx / "a.txt").write_text("B\n")
    cengine.build(dockerfile, ctx, build_time=STATIC)
    assert USING not in cengine.lines and "B" in cengine.lines


# --- through the daemon and the client ------------------------------------------------------


def test_copy_flags_end_to_end(client, busybox_image: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                               git_repo: tuple[Path, Path, str]) -> None:
    repo = git_repo[2]
    ctx = write(tmp_path / "e2e", {"pkgs/a/package.json": "a", "pkgs/b/package.json": "b",
                                   "pkgs/a/index.js": "x", "notes.md": "n", "app.c": "c"})
    payload = (git_repo[1].parent / "blob.txt")
    payload.write_text("blob\n")
    good = "sha256:" + hashlib.sha256(b"blob\n").hexdigest()
    base = repo.rsplit("/", 1)[0]
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "COPY --parents pkgs/*/package.json /w/\n"
        "COPY --exclude=*.md --exclude=Dockerfile --link . /x/\n"
        f"ADD --checksum={good} {base}/blob.txt /blob.txt\n"
        f"ADD {repo}#v1:src /g/\n"
        "RUN find /w /x /g -type f | sort && cat /blob.txt /g/main.c\n")
    out = client("ctr-img", "build", "-t", "isb-test-copyflags:1", str(ctx)).stdout.splitlines()
    assert [line for line in out if line.startswith("/")] == [
        "/g/main.c", "/w/pkgs/a/package.json", "/w/pkgs/b/package.json", "/x/app.c",
        "/x/pkgs/a/index.js", "/x/pkgs/a/package.json", "/x/pkgs/b/package.json"]
    assert "blob" in out and "v1" in out
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN true\nADD --keep-git-dir {base}/blob.txt /b\n")
    failed = client("ctr-img", "build", str(ctx), check=False)
    assert failed.returncode == 1
    assert "Dockerfile line 3: ADD --keep-git-dir is for a git repository" in failed.stderr
