"""The layout rules of README's Layout section, checked on the source (static, no imports).

- no Python file over 500 lines and no function over 120 lines in ``hai_edge/``;
- no module imports a private (``_name``) module or name of another top-level package;
- the arrows between top-level packages run one way (no cycle), ``quantize`` never imports
  ``export``, the bundle contract imports nothing above it, and the run side imports nothing
  from the build side.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "hai_edge"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 120
RUN_SIDE = {"bundle", "runtime", "devices", "apps"}
BUILD_SIDE = {"teachers", "distill", "export", "quantize", "heads", "report", "demo",
              "evaluation", "corpus", "stress"}
BOTTOM = {"errors", "fileio", "tools", "__init__"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(module: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every hai_edge import, made absolute."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "hai_edge":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    found.append((sub, None, node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hai_edge":
                    found.append((alias.name, None, node.lineno))
    return found


def _package_edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, path in MODULES.items():
        for target, _name, line in _imports(module, path):
            a, b = _top(module), _top(target)
            if a != b and b not in BOTTOM:
                edges[(a, b)].append(f"{path.relative_to(PKG.parent)}:{line}")
    return edges


def test_files_and_functions_are_short() -> None:
    long_files, long_functions = [], []
    for path in MODULES.values():
        text = path.read_text()
        n = len(text.splitlines())
        if n > MAX_FILE_LINES:
            long_files.append(f"{path.relative_to(PKG.parent)}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(
                        f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name}: {length} lines")
    assert not long_files, long_files
    assert not long_functions, long_functions


def test_no_private_imports_across_packages() -> None:
    bad = []
    for module, path in MODULES.items():
        for target, name, line in _imports(module, path):
            if _top(module) == _top(target):
                continue
            private_module = any(p.startswith("_") and p != "__init__" for p in target.split(".")[1:])
            private_name = name is not None and name.startswith("_") and name != "__version__"
            if private_module or private_name:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {target}"
                           + (f":{name}" if name else ""))
    assert not bad, bad


def test_package_arrows_run_one_way() -> None:
    edges = _package_edges()
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reaches(nxt, goal, seen):
                    return True
        return False

    cycles = sorted(f"{a} <-> {b}: {edges[(a, b)][0]}" for a, b in edges if reaches(b, a, set()))
    assert not cycles, cycles


@pytest.mark.parametrize(("low", "forbidden"), [
    ("quantize", {"export"}),
    ("bundle", RUN_SIDE - {"bundle"} | BUILD_SIDE | {"cli"}),
    *[(side, BUILD_SIDE | {"cli"}) for side in sorted(RUN_SIDE)],
])
def test_forbidden_arrows(low: str, forbidden: set[str]) -> None:
    bad = [f"{a} -> {b}: {where[0]}" for (a, b), where in _package_edges().items()
           if a == low and b in forbidden]
    assert not bad, bad


def test_every_package_is_placed() -> None:
    """A new top-level package must be placed on one side (or the CLI / the shared bottom)."""
    tops = {_top(m) for m in MODULES}
    assert tops <= RUN_SIDE | BUILD_SIDE | BOTTOM | {"cli"}, tops - (RUN_SIDE | BUILD_SIDE | BOTTOM)
