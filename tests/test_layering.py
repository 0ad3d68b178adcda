"""Layers are one-way: persistence <- actors <- runtime (DESIGN.md section 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import wayline

PACKAGE_ROOT = Path(wayline.__file__).parent

# layer -> packages it must never import
FORBIDDEN = {
    "persistence": ("wayline.actors", "wayline.runtime", "wayline.testing"),
    "actors": ("wayline.runtime", "wayline.testing"),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Absolute names of every module imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from .. import runtime` names a subpackage in the imported names
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def _violations(layer: str) -> list[str]:
    out = []
    for path in sorted((PACKAGE_ROOT / layer).rglob("*.py")):
        for lineno, name in _imports(path):
            for banned in FORBIDDEN[layer]:
                if name == banned or name.startswith(banned + "."):
                    out.append(f"{path.relative_to(PACKAGE_ROOT)}:{lineno} imports {name}")
    return out


def test_resolver_sees_relative_imports() -> None:
    # guard the guard: the resolver must turn `from ..actors import X` into wayline.actors
    names = {name for _, name in _imports(PACKAGE_ROOT / "runtime" / "_run.py")}
    assert "wayline.actors" in names
    assert "wayline.persistence" in names


def test_layer_directories_exist() -> None:
    for layer in FORBIDDEN:
        assert list((PACKAGE_ROOT / layer).glob("*.py")), layer


def test_persistence_imports_neither_actors_nor_runtime() -> None:
    assert _violations("persistence") == []


def test_actors_do_not_import_runtime() -> None:
    assert _violations("actors") == []


def test_every_module_parses() -> None:
    for path in PACKAGE_ROOT.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
