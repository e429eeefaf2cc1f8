"""The package layers' one-way dependencies, read from the source (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import reelforge

PACKAGE = Path(reelforge.__file__).parent


def reelforge_imports(path: Path) -> set[str]:
    """The reelforge modules `path` imports, anywhere in its body (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("reelforge.")}


def test_engines_and_the_spec_know_no_dialect() -> None:
    modules = [*sorted((PACKAGE / "engines").rglob("*.py")), PACKAGE / "spec.py"]
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in reelforge_imports(path) if name.startswith("reelforge.api")
        )
        for path in modules
    }
    assert {module: names for module, names in offenders.items() if names} == {}
