"""Compares two flattened images and states each difference as plain data.

A difference is one of
    {"path": "/a", "docker": {entry} | None, "ours": {entry} | None}     (a file-tree path)
    {"config": "User", "docker": value | None, "ours": value | None}     (a config field)
    {"author": true, "docker": "...", "ours": "..."}
so that a case can list, in its case.json, the differences we keep on purpose (each with a
"reason") and the test can assert that exactly those remain.
"""

from __future__ import annotations

from typing import Any

from flatten import CONFIG_FIELDS, FlatImage, Tree

# Written by the builder or the runtime, not by the Dockerfile: left out of every comparison.
VOLATILE_PATHS = frozenset({"/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/.dockerenv"})


def _visible(tree: Tree) -> Tree:
    return {p: e for p, e in tree.items() if p not in VOLATILE_PATHS}


def differences(docker: FlatImage, ours: FlatImage) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    d_tree, o_tree = _visible(docker.tree), _visible(ours.tree)
    for path in sorted(set(d_tree) | set(o_tree)):
        d, o = d_tree.get(path), o_tree.get(path)
        if d != o:
            out.append({"path": path, "docker": d.to_json() if d else None,
                        "ours": o.to_json() if o else None})
    for key in CONFIG_FIELDS:
        d_val, o_val = docker.config.get(key), ours.config.get(key)
        if d_val != o_val:
            out.append({"config": key, "docker": d_val, "ours": o_val})
    if docker.author != ours.author:
        out.append({"author": True, "docker": docker.author, "ours": ours.author})
    return out


def without_reason(diff: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in diff.items() if k != "reason"}


def describe(diffs: list[dict[str, Any]], limit: int = 40) -> str:
    """A readable list for assertion messages."""
    lines = []
    for diff in diffs[:limit]:
        what = diff.get("path") or (f"config {diff['config']}" if "config" in diff else "author")
        lines.append(f"  {what}: docker={diff['docker']!r} ours={diff['ours']!r}")
    if len(diffs) > limit:
        lines.append(f"  … and {len(diffs) - limit} more")
    return "\n".join(lines)


def delta(base: Tree, image: FlatImage) -> dict[str, Any]:
    """What an image is relative to the busybox base: config, changed paths, removed paths.

    This is what expected/<case>.json stores, so a reviewer reads what docker made without
    scrolling past busybox's 400 applet links.
    """
    tree = _visible(image.tree)
    changed = {p: e.to_json() for p, e in sorted(tree.items()) if base.get(p) != e}
    removed = sorted(p for p in base if p not in tree)
    return {"config": image.config, "author": image.author, "changed": changed, "removed": removed}
