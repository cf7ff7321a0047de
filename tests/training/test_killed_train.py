"""A `lifecycle train` killed mid-way: its run ends FAILED and `promote` never takes its models.

Real training (tiny models) as a real process into a real SQLite store under tmp_path, killed the
moment it has registered its first model (issue 17, point 2).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.features.simulate import simulate
from lifecycle.models.store import CHALLENGER, load_champions, open_store

pytestmark = pytest.mark.slow

runner = CliRunner()


def run(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def challenger(db: Path, name: str) -> int:
    """The version holding the alias challenger, read straight from the store (0 when none)."""
    with sqlite3.connect(db, timeout=30) as con:
        rows = con.execute(
            "select version from registered_model_aliases where name = ? and alias = ?",
            (name, CHALLENGER),
        ).fetchall()
    return int(rows[0][0]) if rows else 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
def test_a_killed_train_ends_failed_and_is_never_promoted(tmp_path: Path, sig) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    config = tmp_path / "training.yaml"
    config.write_text(
        "max_train_cutoffs: 2\nreport_customer_split: false\nbaselines: [rfm]\n"
        "shap_sample: 100\ntuning: {trials: 1}\n",
        encoding="utf-8",
    )
    simulate(1500, seed=21, out_dir=tmp_path / "sim", days=1460)
    args = ["train", "--events", str(tmp_path / "sim" / "events.parquet"), "--config", str(config)]
    args += ["--tracking-uri", uri]
    run(*args)
    run("promote", "--tracking-uri", uri)
    client = open_store(uri)
    before = {t: (m.version, m.run_id) for t, m in load_champions(client).items()}
    assert {v for v, _ in before.values()} == {"1"} and len({r for _, r in before.values()}) == 1

    # a second training, killed as soon as it registered its first model (next_stage)
    log = tmp_path / "train.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lifecycle.cli", *args], stdout=out, stderr=out
        )
    deadline = time.monotonic() + 600
    while challenger(db, "lifecycle-next-stage") != 2:
        assert process.poll() is None, log.read_text(errors="replace")[-2000:]
        assert time.monotonic() < deadline, "the training registered nothing in 10 minutes"
        time.sleep(0.05)
    process.send_signal(sig)
    process.wait(timeout=120)
    assert process.returncode != 0
    killed = client.get_model_version_by_alias("lifecycle-next-stage", CHALLENGER)
    assert str(killed.version) == "2"
    status = client.get_run(killed.run_id).info.status
    assert status == ("RUNNING" if sig == signal.SIGKILL else "FAILED")

    for extra in ([], ["--force"]):
        result = run("promote", "--tracking-uri", uri, "--json", *extra, code=1)
        decisions = json.loads(result.stdout)["promotions"]
        mine = [d for d in decisions if d["challenger"] == "2"]
        assert mine and all(d["status"] == "refused" and not d["forceable"] for d in mine)
        assert "nothing of that run moved" in result.stderr
        after = {t: (m.version, m.run_id) for t, m in load_champions(client).items()}
        assert after == before  # the service still sees one finished run's set
    assert client.get_run(killed.run_id).info.status == "FAILED"
