"""Nothing in `serving` happens on import: no environment read, no engine behind the HTTP client."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from lifecycle.serving.guard import Runtime

BAD_ENV = {"LIFECYCLE_MAX_BATCH": "not a number", "LIFECYCLE_MODEL_NAMES": "{not json"}


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **env},
    )


def test_http_client_imports_without_the_engine_duckdb_or_lightgbm():
    done = run_python(
        "import sys, lifecycle.serving.client; "
        "heavy = {'duckdb', 'lightgbm', 'mlflow', 'lifecycle.serving.engine'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_bad_lifecycle_variable_does_not_break_imports():
    done = run_python(
        "import lifecycle.serving.client, lifecycle.serving.guard, lifecycle.serving.service",
        **BAD_ENV,
    )
    assert done.returncode == 0, done.stderr


def test_the_runtime_reads_its_settings_on_first_use(monkeypatch):
    for name, value in BAD_ENV.items():
        monkeypatch.setenv(name, value)
    runtime = Runtime()  # what the guard and the page hold from import on
    with pytest.raises(ValidationError, match="max_batch"):
        _ = runtime.settings
    monkeypatch.setenv("LIFECYCLE_MAX_BATCH", "7")
    monkeypatch.delenv("LIFECYCLE_MODEL_NAMES")
    assert runtime.settings.max_batch == 7
