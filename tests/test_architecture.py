"""The architecture's rules that code can check: no import circles, one place for the device.

Imports are read from the source (every ``import`` statement, deferred ones in functions
included), so a circle hidden by a function-level import is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "optnet": ROOT / "src" / "optnet",
    "optnet_benchmarks": ROOT / "benchmarks" / "optnet_benchmarks",
    "optnet_experiments": ROOT / "experiments" / "optnet_experiments",
}


def _modules(package: str, folder: Path) -> dict[str, Path]:
    """Dotted module name -> file, packages as their ``__init__.py``."""
    out = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((package, *parts))] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` imports, where it imports them."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)  # submodules
    found = set()
    for target in targets:
        if target not in modules or target == name or name.startswith(target + "."):
            continue  # a package's own modules import it while it is being imported
        found.add(target)
        # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless the importer already
        # lives inside that package (then the package is being imported already).
        parts = target.split(".")
        for k in range(1, len(parts)):
            parent = ".".join(parts[:k])
            if parent in modules and not name.startswith(parent + ".") and parent != name:
                found.add(parent)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (a list of modules), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("package", list(PACKAGES))
def test_no_import_circle(package):
    folder = PACKAGES[package]
    if not folder.is_dir():
        pytest.skip(f"{folder} is not in this checkout")
    modules = _modules(package, folder)
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_circle_finder_finds_a_deferred_circle(tmp_path):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "a.py").write_text("from . import b\n")
    (folder / "b.py").write_text("def f():\n    from .a import g\n")
    modules = _modules("pkg", folder)
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycle(graph) in (["pkg.a", "pkg.b", "pkg.a"], ["pkg.b", "pkg.a", "pkg.b"])


def test_only_the_backends_ask_which_device():
    # The backends' policies decide what runs on which device (docs/solver.md, "Backends");
    # the algorithm, the factorizations and the autograd code read the policy instead.
    allowed = {"_backends/__init__.py", "_backends/batched.py", "_backends/graphed.py", "cli.py"}
    folder = PACKAGES["optnet"]
    asking = sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*.py")
        if 'device.type == "' in path.read_text() or "device.type != " in path.read_text()
    )
    assert set(asking) <= allowed, asking
