"""The house imports one way (DESIGN.md section 1, CONVENTIONS.md "Shape").

Between packages: persistence <- actors <- runtime, and runtime/asl imports nothing of the
runtime around it. Inside them: no module imports another that imports it back, however
far round (an import under ``TYPE_CHECKING`` or inside a function counts: both are circles
in the design, whatever Python makes of them at run time). And no module reaches into
another package's private modules: it goes through that package's face (its __init__).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import wayline

PACKAGE_ROOT = Path(wayline.__file__).parent

#: The library: its packages keep their private modules to themselves. (The ``wayline``
#: command and the demo are applications on top of it, with internals of their own.)
LIBRARY = ("wayline.actors", "wayline.persistence", "wayline.runtime", "wayline.testing")

# package -> packages it must never import
FORBIDDEN = {
    "wayline.persistence": ("wayline.actors", "wayline.runtime", "wayline.testing"),
    "wayline.actors": ("wayline.runtime", "wayline.testing"),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    module = _module_name(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


MODULES = _modules()


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every wayline module ``path`` imports, anywhere in it, relative imports resolved; an
    imported name that is a submodule (``from . import _steps``) counts as that module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES]
            if submodules:
                yield from ((node.lineno, name) for name in submodules)
            if len(submodules) < len(node.names):
                yield node.lineno, target


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph[module] = {name for _, name in _imports(path) if name in MODULES and name != module}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _private_owners(target: str) -> list[str]:
    """For each private part of module ``target`` (a name starting with ``_``, not a dunder
    such as ``__main__``), the package it is private to: ``wayline.runtime.run._actor`` ->
    ``["wayline.runtime.run"]``."""
    parts = target.split(".")
    return [
        ".".join(parts[:i])
        for i in range(1, len(parts))
        if parts[i].startswith("_") and not parts[i].endswith("__")
    ]


def _private_reaches(path: Path) -> list[str]:
    """Imports of ``path`` into the private modules of a package that is not its own (nor one
    it is inside of: a subpackage may use its parents' private modules)."""
    package = _package_of(path)
    out = []
    for lineno, name in _imports(path):
        if not name.startswith("wayline."):
            continue
        for owner in _private_owners(name):
            if not owner.startswith(LIBRARY):
                continue
            if not (package == owner or package.startswith(owner + ".")):
                out.append(f"{path.relative_to(PACKAGE_ROOT)}:{lineno} imports {name}, private to {owner}")
                break
    return out


def _violations(package: str, banned: tuple[str, ...]) -> list[str]:
    out = []
    for module, path in MODULES.items():
        if module != package and not module.startswith(package + "."):
            continue
        for lineno, name in _imports(path):
            for ban in banned:
                if name == ban or name.startswith(ban + "."):
                    out.append(f"{path.relative_to(PACKAGE_ROOT)}:{lineno} imports {name}")
    return out


def test_resolver_sees_relative_imports_and_submodules() -> None:
    # guard the guard: relative imports resolve, and `from . import _x` names module _x
    names = {name for _, name in _imports(PACKAGE_ROOT / "runtime" / "run" / "_actor.py")}
    assert "wayline.actors" in names
    assert "wayline.runtime._port" in names
    assert "wayline.runtime.run._code" in names  # from . import _code as code
    assert "wayline.runtime.run._decide" in names


def test_the_circle_finder_finds_circles() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_the_private_rule_tells_faces_from_insides() -> None:
    assert _private_owners("wayline.runtime.run._actor") == ["wayline.runtime.run"]
    assert _private_owners("wayline.runtime._telemetry._tracing") == ["wayline.runtime", "wayline.runtime._telemetry"]
    assert _private_owners("wayline.runtime.asl") == []
    assert _private_owners("wayline.demo.__main__") == []


def test_layer_directories_exist() -> None:
    for package in FORBIDDEN:
        assert package in MODULES, package


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(package: str) -> None:
    assert _violations(package, FORBIDDEN[package]) == []


def test_the_asl_interpreter_imports_nothing_of_the_runtime_around_it() -> None:
    outside = [
        v
        for v in _violations("wayline.runtime.asl", ("wayline.runtime",))
        if not v.split(" imports ")[1].startswith("wayline.runtime.asl")
    ]
    assert outside == []


def test_no_module_imports_itself_round_a_circle() -> None:
    assert _circles(_graph()) == []


def test_no_module_reaches_into_another_packages_private_modules() -> None:
    assert [v for path in MODULES.values() for v in _private_reaches(path)] == []


def test_every_module_parses() -> None:
    for path in PACKAGE_ROOT.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
