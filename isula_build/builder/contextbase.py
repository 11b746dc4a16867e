"""The base of a stage FROM a named context's directory (contexts.py).

The directory's files are copied into a fresh root in the work dir as `COPY . /` copies the
main context (its .dockerignore applied, owners root, modes and mtimes kept), and that root is
the stage's one lower dir and, as a layer tar, its one base layer (none when nothing is left).
The stage's first key is made of the files' digests (copydigest, as a COPY's), so a changed
file is a miss and an unchanged directory a hit.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from isula_build.builder.config import StageConfig
from isula_build.builder.contexts import LocalContext
from isula_build.builder.copier import copy_into_root
from isula_build.builder.copydigest import source_digest
from isula_build.builder.executor import BuildRun, RootStack
from isula_build.builder.layertar import write_layer_file
from isula_build.builder.stage import LayerFile, StageBase

_ALL = ["."]


def directory_base(ctx: BuildRun, local: LocalContext,
                   root_key: Callable[[str], str]) -> StageBase:
    """`root_key(text)` makes the stage's first parent key from what stands for the files."""
    ignored = local.ignore.ignored if local.ignore else None
    exceptions = local.ignore.has_exceptions if local.ignore else False
    found = source_digest(_ALL, context_dir=local.path, add=False, ignored=ignored,
                          ignore_has_exceptions=exceptions)
    assert found is not None  # only remote sources have no digest
    folder = ctx.new_dir("context")
    root = folder / "root"
    root.mkdir(parents=True)
    copy_into_root(root, _ALL, "/", source_root=local.path, ignored=ignored,
                   ignore_has_exceptions=exceptions, tmp_dir=ctx.work_dir)
    layers = []
    if any(os.scandir(root)):
        path = folder / "layer.tar"
        epoch = int(ctx.build_time.timestamp()) if ctx.build_time else None
        stats = write_layer_file(root, path, mtime=epoch)
        layers.append(LayerFile(stats.diff_id, stats.size, path, stats.verified))
    return StageBase(RootStack([root]), layers, StageConfig.scratch(),
                     root_key("context " + found.digest))


__all__ = ["directory_base"]
