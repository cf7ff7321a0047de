"""`lifecycle validate`: plausibility rules from the config, the memory cap and its errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lifecycle.cli import app

runner = CliRunner()
LOG = (
    "customer_id,event_ts,event_type,revenue\n"
    "1,2024-01-01,purchase,10\n"
    "1,0001-01-01,visit,\n"
    "2,2015-06-01,visit,\n"
    "2,2024-01-02,visit,4\n"
    "3,2024-01-03,purchase,-1\n"
)


def _validate(tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    src = tmp_path / "events.csv"
    src.write_text(LOG)
    args = ["validate", "--events", str(src), "--out", str(tmp_path / "v"), "--json", *extra]
    result = runner.invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def test_implausible_rows_are_quarantined_by_the_command(tmp_path: Path) -> None:
    code, stdout, stderr = _validate(tmp_path)
    assert code == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["reasons"] == {
        "before_earliest_event": 1,
        "negative_revenue": 1,
        "revenue_on_non_revenue_event": 1,
    }
    assert summary["rows_accepted"] == 2


def test_the_earliest_date_comes_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "lifecycle.yaml"
    config.write_text("validation:\n  earliest_event: 2020-01-01\n")
    code, stdout, stderr = _validate(tmp_path, "--config", str(config))
    assert code == 0, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["reasons"]["before_earliest_event"] == 2


def test_a_bad_memory_limit_is_a_usage_error(tmp_path: Path) -> None:
    code, _, stderr = _validate(tmp_path, "--memory-limit", "lots")
    assert code == 2
    assert "not a size" in stderr


def test_the_memory_limit_can_come_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIFECYCLE_MEMORY_LIMIT", "lots")
    code, _, stderr = _validate(tmp_path)
    assert code == 2 and "'lots'" in stderr
