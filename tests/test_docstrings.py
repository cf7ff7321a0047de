"""Every docstring example in the five packages runs and shows what it says (``make test``)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

PACKAGES = (
    "lifecycle",
    "lifecycle.features",
    "lifecycle.models",
    "lifecycle.training",
    "lifecycle.serving",
)
NEEDS_EXTRA = {"lifecycle.models.baselines": "pymc_marketing"}
"""Modules whose examples need an optional extra (``baselines``): skipped without it."""


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        if package not in names:
            names.append(package)
        path = importlib.import_module(package).__path__
        for info in pkgutil.walk_packages(path, f"{package}."):
            # running __main__ is the module's job
            if not info.name.endswith("__main__") and info.name not in names:
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str, tmp_path, monkeypatch) -> None:
    extra = NEEDS_EXTRA.get(name)
    if extra and importlib.util.find_spec(extra) is None:
        pytest.skip(f"the examples of {name} need {extra} (the `baselines` extra)")
    monkeypatch.chdir(tmp_path)  # an example that writes a file leaves it here
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
