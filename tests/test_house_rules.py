"""House rules that hold for the whole code base (issue 27): no module uses another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cropper", "backends", "training")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list[str]:
    """`from m import _x`, and `m._x` where `m` was bound by an import, in one module's source."""
    tree = ast.parse(source)
    imported: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {alias.name}")
                imported.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in imported):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_checker_finds_both_forms():
    assert private_uses("from .sft import ImageStore, _bar\n") == ["line 1: from .sft import _bar"]
    assert private_uses("from cropper import strategies\nstrategies._parts(1)\n") == ["line 2: strategies._parts"]
    assert private_uses("import os\nos.__name__\nfrom a import b as _c\n") == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_another_modules_private_names(path):
    # Third-party privates (torch's module._parameters, ...) are looked up on objects, not imported names,
    # so they do not show here; ours would.
    assert private_uses(path.read_text(encoding="utf-8")) == []
