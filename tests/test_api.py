"""`lifecycle`, the one import surface: light to import, every name the library's own object."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import lifecycle

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
PACKAGES = {"lifecycle.features", "lifecycle.models", "lifecycle.training", "lifecycle.serving"}


def test_import_lifecycle_imports_nothing_heavy():
    heavy = ["pandas", "numpy", "duckdb", "mlflow", "typer", *PACKAGES]
    code = f"import sys, lifecycle; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_every_public_name_is_the_library_object():
    assert sorted(lifecycle._EXPORTS) == sorted(lifecycle.__all__)
    for name in lifecycle.__all__:
        module, attribute = lifecycle._EXPORTS[name]
        assert getattr(lifecycle, name) is getattr(importlib.import_module(module), attribute)
    assert set(lifecycle.__all__) <= set(dir(lifecycle))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lifecycle.nope  # noqa: B018


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_import_the_project_only_through_lifecycle(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    imported: set[str] = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(line for line in cell["source"] if not line.startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
                if node.module == "lifecycle":
                    imported |= {alias.name for alias in node.names}
            else:
                continue
            assert not {".".join(m.split(".")[:2]) for m in modules} & PACKAGES, modules
    assert imported and imported <= set(lifecycle.__all__)
