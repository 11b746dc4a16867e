"""The package layering of isula_build holds: every import, at module level, under
TYPE_CHECKING or inside a function, goes to the same package or to one lower in LAYERS, and no
import circle runs through files of different packages.

Lower layers never reach the daemon or the client: the registry code and the engine take plain
settings (registry/settings.py) instead of the daemon's state.
"""

from __future__ import annotations

import ast
from pathlib import Path

import isula_build

PACKAGE_DIR = Path(isula_build.__file__).resolve().parent
ROOT = "isula_build"

# Lowest first. A package (or top-level module) may import its own layer and the layers below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("isula_build", "errors", "units", "api", "buildinfo", "progress"),  # leaves: errors, the
    # wire, facts, progress events
    ("image",),          # pure data and helpers: digests, configs, manifests, references
    ("dockerfile",),
    ("store",),
    ("registry",),       # HTTP client, auth, credentials, TLS, settings
    ("transports",),     # may use the registry client
    ("distribution",),   # pull and push: store and registries, through the transports
    ("builder",),
    ("separated",),
    ("daemon",),
    ("cli",),
)
LEVEL = {unit: n for n, layer in enumerate(LAYERS) for unit in layer}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def unit_of(module: str) -> str:
    """The package or top-level module of isula_build a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def imports_in(source: str, package: str) -> set[str]:
    """Every module of isula_build that code in `package` imports, wherever the statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            # `from isula_build.image import config` imports the submodule itself.
            found.update(f"{origin}.{alias.name}" for alias in node.names
                         if f"{origin}.{alias.name}" in MODULES)
    return {name for name in found if name == ROOT or name.startswith(ROOT + ".")}


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imports_in(path.read_text(), package)


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if unit_of(m) not in LEVEL)
    assert unplaced == [], "add these packages to LAYERS in tests/test_layering.py"


def test_imports_go_down_the_layers() -> None:
    upward = sorted(f"{module} imports {target}"
                    for module, targets in GRAPH.items() for target in targets
                    if LEVEL.get(unit_of(target), -1) > LEVEL[unit_of(module)])
    assert upward == [], "\n".join(upward)


def test_nothing_below_the_daemon_imports_the_daemon_or_the_client() -> None:
    offenders = sorted(f"{module} imports {target}"
                       for module, targets in GRAPH.items()
                       if unit_of(module) not in ("daemon", "cli")
                       for target in targets if unit_of(target) in ("daemon", "cli"))
    assert offenders == [], "\n".join(offenders)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_circle_crosses_packages() -> None:
    crossing = [c for c in _cycles(GRAPH) if len({unit_of(m) for m in c}) > 1]
    assert crossing == [], "\n".join("a circle through " + ", ".join(c) for c in crossing)


def test_the_checker_sees_every_kind_of_import() -> None:
    source = ("from typing import TYPE_CHECKING\n"
              "from . import config\n"
              "from ..image.digest import digest_of\n"
              "if TYPE_CHECKING:\n"
              "    from isula_build.daemon.state import DaemonState\n"
              "def f():\n"
              "    import isula_build.cli.main\n")
    assert imports_in(source, "isula_build.registry") == {
        "isula_build.registry", "isula_build.registry.config", "isula_build.image.digest",
        "isula_build.daemon.state", "isula_build.cli.main"}
