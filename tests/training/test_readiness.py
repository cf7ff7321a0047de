"""Data readiness: what a log supports, per task, before training; training skips the rest."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.features.simulate import simulate
from lifecycle.training.config import TrainingConfig, TuningSettings
from lifecycle.training.pipeline import run_training
from lifecycle.training.readiness import MIN_OUTCOMES, NotReady, assess


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(2000, seed=11, out_dir=out, days=1460)
    return out


@pytest.fixture(scope="module")
def no_amounts(sim: Path) -> Path:
    """The same log with every amount removed (a log of purchase dates only)."""
    events = pd.read_parquet(sim / "events.parquet")
    events["revenue"] = float("nan")
    path = sim.parent / "no_amounts.parquet"
    events.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def one_year(sim: Path) -> Path:
    events = pd.read_parquet(sim / "events.parquet")
    last = events["event_ts"].max()
    keep = events["event_ts"] > last - pd.Timedelta(days=365)
    path = sim.parent / "one_year.parquet"
    events[keep].to_parquet(path, index=False)
    return path


def test_full_log_supports_every_task(sim: Path) -> None:
    report = assess(sim / "events.parquet")
    assert report.supported() == ("next_stage", "churn", "clv")
    assert report.learner == "hybrid"
    for task, verdict in report.tasks.items():
        ev = verdict.counts["eval"]
        assert ev["rows"] >= 50, task
        assert verdict.cutoffs["train"] >= 1 and verdict.recency_reach_days > 30


def test_revenue_free_log_has_no_clv_and_says_why(no_amounts: Path) -> None:
    report = assess(no_amounts)
    assert report.tasks["clv"].status == "unsupported"
    assert "no revenue" in report.tasks["clv"].reasons[0]
    assert report.supported() == ("next_stage", "churn")
    assert any("no purchase carries an amount" in n for n in report.data["notes"])
    assert not any("no sign-up events" in n for n in report.data["notes"])


def test_one_year_log_is_too_short_for_a_year_of_clv(one_year: Path) -> None:
    report = assess(one_year)
    clv = report.tasks["clv"]
    assert (
        clv.status == "unsupported"
        and "too little history for a 365-day horizon" in (clv.reasons[0])
    )
    assert "1,125" in clv.reasons[0]  # three 365-day windows and a month
    assert report.tasks["next_stage"].supported  # 30 days fit in a year


def test_too_few_outcomes_make_a_task_unsupported(sim: Path) -> None:
    events = pd.read_parquet(sim / "events.parquet")
    few = events[events["customer_id"].isin(events["customer_id"].unique()[:150])]
    report = assess(few)
    churn = report.tasks["churn"]
    assert churn.status == "unsupported"
    assert any("at least" in r for r in churn.reasons)
    counts = churn.counts["valid"]
    assert counts["rows"] < 50 or min(counts["positives"], counts["negatives"]) < MIN_OUTCOMES


def test_training_a_revenue_free_log_skips_clv_with_its_reason(no_amounts: Path) -> None:
    baselines = ("rfm", "bgnbd") if importlib.util.find_spec("pymc_marketing") else ("rfm",)
    config = TrainingConfig(
        max_train_cutoffs=2,
        report_customer_split=False,
        baselines=baselines,
        tuning=TuningSettings(trials=1),
        shap_sample=100,
    )
    messages: list[str] = []
    result = run_training(no_amounts, config=config, progress=messages.append)
    assert set(result.tasks) == {"next_stage", "churn"}
    assert "no revenue" in result.data["skipped"]["clv"]
    assert messages[0].startswith("log: ") and any(
        m == "clv (365 d): unsupported" for m in messages
    )
    if "bgnbd" in baselines:  # BG/NBD alone serves the churn baseline; no Gamma-Gamma crash
        assert "bgnbd" in result.tasks["churn"].summary["metrics"]


def test_training_refuses_when_no_task_is_supported(one_year: Path) -> None:
    with pytest.raises(NotReady, match="clv: too little history"):
        run_training(one_year, config=TrainingConfig(tasks=("clv",)))


def test_cli_check_prints_each_task_and_exits_by_support(
    no_amounts: Path, one_year: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["check", "--events", str(no_amounts)])
    assert shown.exit_code == 0, shown.output
    assert "clv (365 d): unsupported" in shown.output and "no revenue" in shown.output
    as_json = runner.invoke(app, ["check", "--events", str(no_amounts), "--json"])
    report = json.loads(as_json.stdout.strip().splitlines()[-1])
    assert report["tasks"]["churn"]["status"] in {"ready", "weak"}
    config = tmp_path / "training.yaml"
    config.write_text("tasks: [clv]\n", encoding="utf-8")
    refused = runner.invoke(app, ["check", "--events", str(one_year), "--config", str(config)])
    assert refused.exit_code == 1
    assert "supports none of the tasks" in refused.output
