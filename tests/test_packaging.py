"""The wheel's package list (pyproject.toml lists packages by name) covers every package in the tree."""

from __future__ import annotations

from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent


def test_every_library_package_is_listed_in_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(project["tool"]["setuptools"]["packages"])
    in_tree = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "polyamp").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    missing = sorted(in_tree - listed)
    assert not missing, f"packages missing from pyproject.toml's [tool.setuptools] packages: {missing}"
