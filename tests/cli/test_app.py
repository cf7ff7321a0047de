"""The `lifecycle` app as a whole: its commands, one set of shared options, one way to fail."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.cli.options import EXIT_FAILED, EXIT_USAGE, fail

runner = CliRunner()
COMMANDS = [
    "simulate",
    "validate",
    "features",
    "stages",
    "rfm",
    "fetch-data",
    "check",
    "train",
    "evaluate",
    "score",
    "promote",
    "rollback",
    "uplift",
    "plan",
    "serve",
]
HEAVY = [
    "pandas",
    "numpy",
    "duckdb",
    "lightgbm",
    "mlflow",
    "lifecycle.features",
    "lifecycle.training",
    "lifecycle.serving",
]


def test_app_has_every_command_in_order():
    group = typer.main.get_command(app)
    assert list(group.commands) == COMMANDS  # type: ignore[attr-defined]
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    rows = [line for line in result.stdout.splitlines() if line[:2] == "│ " and line[2] != " "]
    assert [row.split()[1] for row in rows if not row[2:].startswith("-")] == COMMANDS


@pytest.mark.parametrize(
    "option", ["--json", "--tracking-uri", "--mapping", "--table", "--alias", "--project"]
)
def test_shared_options_are_one_definition(option):
    seen = defaultdict(list)
    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            if option in param.opts:
                seen[(param.help, param.envvar)].append(name)
    assert len(seen) == 1, dict(seen)
    assert len(next(iter(seen.values()))) >= 2


def test_only_tracking_uri_and_project_read_the_environment():
    readers = {
        (name, param.name)
        for name, command in typer.main.get_command(app).commands.items()  # type: ignore[attr-defined]
        for param in command.params
        if param.envvar
    }
    # The memory cap of `validate` belongs to the machine, not the project (issue 17).
    assert ("validate", "memory_limit") in readers
    readers.discard(("validate", "memory_limit"))
    assert {param for _, param in readers} == {"tracking_uri", "project"}
    assert {name for name, param in readers if param == "project"} == {
        name for name, param in readers if param == "tracking_uri"
    }
    assert {name for name, _ in readers} == {
        "train",
        "evaluate",
        "score",
        "promote",
        "rollback",
        "uplift",
        "plan",
        "serve",
    }


@pytest.mark.parametrize("command", ["promote", "rollback", "serve"])
def test_tracking_uri_comes_from_mlflow_tracking_uri(command, tmp_path):
    missing = tmp_path / "nowhere" / "mlflow.db"
    result = runner.invoke(app, [command], env={"MLFLOW_TRACKING_URI": f"sqlite:///{missing}"})
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith(f"error: no MLflow store at {missing};")
    assert not missing.parent.exists()


def test_fail_prints_one_line_and_returns_the_exit(capsys):
    failed = fail("the log at [data]/events.parquet has no rows", EXIT_FAILED)
    assert isinstance(failed, typer.Exit) and failed.exit_code == 1
    assert capsys.readouterr().err == "error: the log at [data]/events.parquet has no rows\n"


def test_cli_imports_no_heavy_library():
    code = f"import sys, lifecycle.cli; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_python_m_lifecycle_cli_is_the_app():
    done = subprocess.run(
        [sys.executable, "-m", "lifecycle.cli", "rollback", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 0, done.stderr
    assert "--tracking-uri" in done.stdout and "MLFLOW_TRACKING_URI" in done.stdout
