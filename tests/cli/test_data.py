"""The `lifecycle` CLI: the command contract scripts rely on, --json summaries, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from lifecycle.cli import app

runner = CliRunner()
COMMANDS = ["simulate", "validate", "features", "stages", "rfm"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def as_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    code, stdout, stderr = invoke(
        "simulate",
        "--customers",
        "400",
        "--seed",
        "3",
        "--days",
        "365",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, stderr
    summary = as_json(stdout)
    assert summary["customers"] == 400
    assert isinstance(summary["events"], int) and summary["events"] > 400
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_every_command_has_help(command):
    code, stdout, _ = invoke(command, "--help")
    assert code == 0
    assert "--json" in stdout
    assert len(stdout.splitlines()) > 8


def test_cli_simulate_writes_the_four_files(sim):
    for name in ("events", "customers", "campaigns", "truth"):
        assert (sim / f"{name}.parquet").exists()


def test_cli_validate_splits_accepted_and_quarantine(sim, tmp_path):
    raw = pq.read_table(sim / "events.parquet").to_pandas().head(200)
    raw["event_ts"] = raw["event_ts"].astype(str)
    raw.loc[0, "customer_id"] = None
    raw.loc[1, "event_type"] = "teleport"
    raw.loc[2, "event_ts"] = "not a time"
    src = tmp_path / "raw.csv"
    raw.to_csv(src, index=False)
    code, stdout, stderr = invoke(
        "validate", "--events", str(src), "--out", str(tmp_path / "v"), "--json"
    )
    assert code == 0, stderr
    summary = as_json(stdout)
    assert summary["rows_in"] == 200
    assert summary["rows_quarantined"] == 3
    assert summary["rows_in"] == summary["rows_accepted"] + summary["rows_quarantined"]
    assert (tmp_path / "v" / "events.parquet").exists()
    quarantine = pd.read_csv(tmp_path / "v" / "quarantine.csv")
    assert len(quarantine) == 3 and quarantine["reason"].notna().all()


def test_cli_validate_exits_nonzero_when_nothing_is_usable(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("customer_id,event_ts,event_type\n,2024-01-01,visit\nx,never,visit\n")
    code, _, stderr = invoke("validate", "--events", str(src), "--out", str(tmp_path / "v"))
    assert code == 1
    assert "no usable rows" in stderr


def test_cli_validate_names_missing_columns(tmp_path):
    src = tmp_path / "cols.csv"
    src.write_text("user,when\nx,2024-01-01\n")
    code, _, stderr = invoke("validate", "--events", str(src), "--out", str(tmp_path / "v"))
    assert code == 1
    assert "customer_id" in stderr and "event_type" in stderr
    assert "Traceback" not in stderr


def test_cli_features_one_row_per_customer_with_an_earlier_event(sim, tmp_path):
    cutoff = "2024-07-01"
    out = tmp_path / "f.parquet"
    code, stdout, stderr = invoke(
        "features",
        "--events",
        str(sim / "events.parquet"),
        "--cutoff",
        cutoff,
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, stderr
    events = pq.read_table(sim / "events.parquet").to_pandas()
    expected = set(events.loc[events["event_ts"] < pd.Timestamp(cutoff, tz="UTC"), "customer_id"])
    frame = pd.read_parquet(out)
    assert set(frame["customer_id"]) == expected
    assert frame["customer_id"].is_unique
    summary = as_json(stdout)
    assert summary["rows"] == len(expected) and isinstance(summary["rows"], int)


def test_cli_features_monthly_cutoffs(sim, tmp_path):
    out = tmp_path / "m.parquet"
    code, stdout, stderr = invoke(
        "features",
        "--events",
        str(sim / "events.parquet"),
        "--cutoffs",
        "monthly",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, stderr
    frame = pd.read_parquet(out)
    assert frame["cutoff"].nunique() == len(as_json(stdout)["cutoffs"]) >= 10
    assert not frame.duplicated(["customer_id", "cutoff"]).any()


def test_cli_features_rejects_a_bad_cutoff_clearly(sim, tmp_path):
    code, _, stderr = invoke(
        "features",
        "--events",
        str(sim / "events.parquet"),
        "--cutoff",
        "someday",
        "--out",
        str(tmp_path / "x.parquet"),
    )
    assert code == 2
    assert "someday" in stderr and "Traceback" not in stderr


def test_cli_stages_and_rfm_reconcile(sim):
    code, stdout, stderr = invoke("stages", "--events", str(sim / "events.parquet"), "--json")
    assert code == 0, stderr
    stages = as_json(stdout)
    assert sum(s["customers"] for s in stages["stages"].values()) == stages["customers"]
    assert stages["stages"]["reach"]["reached"] == stages["customers"]
    code, stdout, stderr = invoke("rfm", "--events", str(sim / "events.parquet"), "--json")
    assert code == 0, stderr
    rfm = as_json(stdout)
    assert sum(s["customers"] for s in rfm["segments"].values()) == rfm["customers"]
    buyers = stages["customers"] - stages["stages"]["reach"]["customers"]
    buyers -= stages["stages"]["acquisition"]["customers"]
    assert rfm["customers"] - rfm["segments"]["No purchase yet"]["customers"] == buyers


def test_cli_stages_prints_a_table_and_one_summary_line(sim):
    code, stdout, _ = invoke("stages", "--events", str(sim / "events.parquet"))
    assert code == 0
    assert "retention" in stdout and "from previous" in stdout
    assert stdout.strip().splitlines()[-1].endswith(tuple("0123456789"))


def test_cli_console_script_runs_as_a_real_process(sim):
    exe = shutil.which("lifecycle", path=str(Path(sys.executable).parent))
    assert exe, "the lifecycle console script is not installed in the environment"
    done = subprocess.run(
        [exe, "stages", "--events", str(sim / "events.parquet"), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert as_json(done.stdout)["customers"] > 0


def test_cli_features_on_a_validate_folder_leaves_quarantined_rows_out(tmp_path):
    src = tmp_path / "raw.csv"
    src.write_text(
        "customer_id,event_ts,event_type,revenue\n"
        "a,2024-01-01T00:00:00Z,purchase,10\n"
        "a,2024-01-01T00:00:00Z,purchase,10\n"  # exact duplicate: quarantined
        "a,2099-01-01T00:00:00Z,purchase,999\n"  # in the future: quarantined
    )
    code, _, stderr = invoke("validate", "--events", str(src), "--out", str(tmp_path / "v"))
    assert code == 0, stderr
    out = tmp_path / "f.parquet"
    code, _, stderr = invoke(
        "features",
        "--events",
        str(tmp_path / "v"),
        "--cutoff",
        "2024-02-01",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, stderr
    frame = pd.read_parquet(out)
    assert frame["n_purchases"].tolist() == [1]
    assert frame["revenue_total"].tolist() == [10.0]


def test_cli_features_validates_a_non_canonical_parquet(tmp_path):
    raw = pd.DataFrame(
        {
            "customer_id": ["a", None],
            "event_ts": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],  # text, not timestamps
            "event_type": ["purchase", "purchase"],
        }
    )
    raw.to_parquet(tmp_path / "raw.parquet")
    code, stdout, stderr = invoke(
        "features",
        "--events",
        str(tmp_path / "raw.parquet"),
        "--cutoff",
        "2024-02-01",
        "--out",
        str(tmp_path / "f.parquet"),
        "--json",
    )
    assert code == 0, stderr
    assert as_json(stdout)["rows_quarantined"] == 1
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--seed", "-1"],
        ["--start", "2024-02-30"],
        ["--start", "notadate"],
        ["--chunk-size", "0"],
    ],
)
def test_cli_simulate_rejects_bad_arguments_clearly(tmp_path, args):
    result = runner.invoke(app, ["simulate", "--customers", "10", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_features_out_must_be_a_file(sim, tmp_path):
    code, _, stderr = invoke(
        "features",
        "--events",
        str(sim / "events.parquet"),
        "--cutoff",
        "2024-07-01",
        "--out",
        str(tmp_path),
    )
    assert code == 2
    assert "folder" in stderr


def test_cli_features_repeated_cutoff_counts_once(sim, tmp_path):
    code, stdout, stderr = invoke(
        "features",
        "--events",
        str(sim / "events.parquet"),
        "--cutoff",
        "2024-07-01",
        "--cutoff",
        "2024-07-01T00:00:00+00:00",
        "--out",
        str(tmp_path / "f.parquet"),
        "--json",
    )
    assert code == 0, stderr
    assert len(as_json(stdout)["cutoffs"]) == 1
