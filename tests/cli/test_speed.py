"""Arguments are checked before heavy imports: a wrong path is reported in well under a second.

Each command runs in a fresh interpreter (through Typer's CliRunner) with a path that does not
exist; the test fails if the error came after pandas, DuckDB, MLflow or LightGBM was imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.cli.options import EXIT_FAILED, EXIT_USAGE

HEAVY = ["pandas", "duckdb", "mlflow", "lightgbm", "sklearn", "bentoml", "shap", "matplotlib"]

PROBE = """
import json, sys
from typer.testing import CliRunner
from lifecycle.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"code": result.exit_code, "stderr": result.stderr, "heavy": heavy}}))
"""


def run_cli(args: list[str], cwd: Path) -> dict[str, object]:
    """Run the CLI in a fresh interpreter; return its exit code, stderr and heavy imports."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=cwd,
        env={
            k: v
            for k, v in os.environ.items()
            if k != "MLFLOW_TRACKING_URI" and not k.startswith("LIFECYCLE_")
        },
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


MISSING = "/nowhere/events.parquet"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["train", "--events", MISSING], EXIT_FAILED, f"{MISSING}: no such file or folder"),
        (
            ["score", "--events", MISSING, "--out", "scores.parquet"],
            EXIT_FAILED,
            f"{MISSING}: no such file or folder",
        ),
        (
            ["features", "--events", MISSING, "--out", "f.parquet", "--cutoffs", "monthly"],
            EXIT_FAILED,
            f"{MISSING}: no such file or folder",
        ),
        (["stages", "--events", MISSING], EXIT_FAILED, f"{MISSING}: no such file or folder"),
        (["rfm", "--events", MISSING], EXIT_FAILED, f"{MISSING}: no such file or folder"),
        (
            ["validate", "--events", MISSING, "--out", "valid"],
            EXIT_FAILED,
            f"{MISSING}: no such file or folder",
        ),
        (
            ["uplift", "--events", MISSING, "--campaigns", "campaigns.parquet"],
            EXIT_FAILED,
            f"{MISSING}: no such file or folder",
        ),
        (["evaluate", "--run", "0" * 32], EXIT_USAGE, "no MLflow store at"),
        (["promote"], EXIT_USAGE, "no MLflow store at"),
        (["rollback"], EXIT_USAGE, "no MLflow store at"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else None,
)
def test_wrong_path_is_reported_before_heavy_imports(args, code, message, tmp_path):
    (tmp_path / "campaigns.parquet").write_bytes(b"")  # exists, so only --events is wrong
    result = run_cli(args, tmp_path)
    assert result["code"] == code, result["stderr"]
    assert message in str(result["stderr"])
    assert result["heavy"] == [], f"{args[0]} imported {result['heavy']} before failing"
    assert not (tmp_path / "mlflow.db").exists()  # no empty store was made


def test_probe_sees_heavy_imports(tmp_path):
    """The probe itself can fail: a command that reaches its work imports heavy libraries."""
    events = tmp_path / "events.csv"
    events.write_text("customer_id,event_ts,event_type\n", encoding="utf-8")
    result = run_cli(["stages", "--events", str(events)], tmp_path)
    assert result["code"] != 0
    assert "pandas" in result["heavy"]
