"""Training on a small simulated log: beats baselines, deterministic, monotone, registered.

One simulation and one training run per module (tiny models); the CLI test trains once more
through ``lifecycle train`` into a real SQLite MLflow store, then scores, promotes and rolls back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.features.simulate import simulate
from lifecycle.training.config import TrainingConfig, TuningSettings
from lifecycle.training.pipeline import TrainingResult, run_training
from lifecycle.training.report import metrics_table
from lifecycle.training.train import evaluation_figures, load_evaluation_scores

CONFIG = TrainingConfig(
    max_train_cutoffs=3,
    report_customer_split=False,
    baselines=("rfm", "last_period"),
    tuning=TuningSettings(trials=2),
    shap_sample=200,
    seed=7,
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(2500, seed=3, out_dir=out, days=1460)
    return out


@pytest.fixture(scope="module")
def trained(sim: Path) -> TrainingResult:
    truth = pd.read_parquet(sim / "truth.parquet")
    return run_training(sim / "events.parquet", config=CONFIG, truth=truth)


def overall(result: TrainingResult, task: str, row: str) -> dict[str, float]:
    return result.tasks[task].summary["metrics"][row]["overall"]  # type: ignore[index]


def test_classifiers_beat_rfm_baseline_on_time_honest_evaluation(trained: TrainingResult) -> None:
    for task in ("next_stage", "churn"):
        assert trained.tasks[task].split.protocol == "time"  # type: ignore[index]
        model, rfm = overall(trained, task, "model"), overall(trained, task, "rfm")
        assert model["roc_auc"] > rfm["roc_auc"] + 0.02, task
        assert model["log_loss"] < rfm["log_loss"], task
        assert model["roc_auc"] < overall(trained, task, "oracle")["roc_auc"] + 0.02, task


def test_clv_beats_rfm_baseline(trained: TrainingResult) -> None:
    model, rfm = overall(trained, "clv", "model"), overall(trained, "clv", "rfm")
    assert model["mae"] < rfm["mae"]
    assert model["normalized_gini"] > rfm["normalized_gini"]
    assert 0.6 <= model["coverage_p10_p90"] <= 0.95


def test_evaluation_is_on_a_later_cutoff_than_training_labels(trained: TrainingResult) -> None:
    for task, result in trained.tasks.items():
        h = pd.Timedelta(days=result.split.horizon_days)
        assert max(result.split.train) + h <= result.split.valid, task
        assert result.split.valid + h <= result.split.eval, task
        assert (result.evaluation["cutoff"] == result.split.eval).all()


def test_per_stage_metrics_are_reported(trained: TrainingResult) -> None:
    by_stage = trained.tasks["next_stage"].summary["metrics"]["model"]["by_stage"]  # type: ignore[index]
    assert {"reach", "acquisition", "conversion"} <= set(by_stage)
    assert "loyalty" not in by_stage  # no next stage after loyalty


def test_same_seed_gives_same_metrics(sim: Path, trained: TrainingResult) -> None:
    truth = pd.read_parquet(sim / "truth.parquet")
    again = run_training(
        sim / "events.parquet", config=CONFIG.model_copy(update={"tasks": ("churn",)}), truth=truth
    )
    assert again.tasks["churn"].summary["metrics"] == trained.tasks["churn"].summary["metrics"]
    assert (
        again.tasks["churn"].estimator.booster_.model_to_string()
        == trained.tasks["churn"].estimator.booster_.model_to_string()
    )


def test_tuning_max_rows_tunes_on_a_sample_and_fits_on_all(sim: Path, trained: TrainingResult):
    full = trained.tasks["churn"].summary["rows"]["train"]
    lines: list[str] = []
    config = CONFIG.model_copy(
        update={"tasks": ("churn",), "tuning": TuningSettings(trials=2, max_rows=full // 3)}
    )
    truth = pd.read_parquet(sim / "truth.parquet")
    sampled = run_training(
        sim / "events.parquet", config=config, truth=truth, progress=lines.append
    )
    assert f"churn: tuning on {full // 3:,} rows" in " ".join(lines)
    assert f"(a sample of {full:,} training rows)" in " ".join(lines)
    # the chosen parameters are fit on every training row
    assert sampled.tasks["churn"].summary["rows"]["train"] == full
    assert sampled.tasks["churn"].summary["metrics"]["model"]["overall"]["roc_auc"] > 0.6


def test_more_recent_activity_never_raises_churn_risk(trained: TrainingResult) -> None:
    model = trained.tasks["churn"].estimator
    rows = trained.tasks["churn"].evaluation.head(200)
    grid = np.array([0.5, 3, 10, 30, 60, 90, 150, 250, 400, 700])
    for column in ("days_since_last_purchase", "days_since_last_event"):
        risks = []
        for days in grid:
            changed = rows.copy()
            changed[column] = days
            if column == "days_since_last_purchase":  # activity can't be older than a purchase
                changed["days_since_last_event"] = np.minimum(
                    changed["days_since_last_event"], days
                )
            risks.append(model.predict_proba(changed))
        risks_arr = np.vstack(risks)
        assert (np.diff(risks_arr, axis=0) >= -1e-12).all(), column
    by_r = np.vstack(
        [model.predict_proba(rows.assign(rfm_r=r)) for r in (1, 2, 3, 4, 5)]
    )  # a higher recency score means more recent
    assert (np.diff(by_r, axis=0) <= 1e-12).all()


def test_moving_the_last_purchase_closer_never_raises_churn_risk(trained: TrainingResult) -> None:
    model = trained.tasks["churn"].estimator
    rows = trained.tasks["churn"].evaluation
    rows = rows[rows["days_since_last_purchase"].between(35, 85)].head(300).copy()
    assert len(rows) > 20
    moved = rows.copy()
    old = rows["days_since_last_purchase"]
    aov = rows["avg_order_value"].fillna(0.0)
    moved["days_since_last_purchase"] = 5.0
    moved["days_since_last_event"] = np.minimum(rows["days_since_last_event"], 5.0)
    moved["purchase_gap_ratio"] = rows["purchase_gap_ratio"] * 5.0 / old
    for w in (7, 30):
        moved[f"n_purchases_{w}d"] += 1
        moved[f"n_events_{w}d"] += 1
        moved[f"revenue_{w}d"] += aov
    moved["purchase_trend_30d"] += 1
    moved["activity_trend_30d"] += 1
    moved["revenue_trend_30d"] += aov
    assert (model.predict_proba(moved) <= model.predict_proba(rows) + 1e-12).all()


def test_cli_train_score_promote_rollback(sim: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "training.yaml"
    config.write_text(
        "max_train_cutoffs: 2\nreport_customer_split: false\nbaselines: [rfm]\n"
        "shap_sample: 100\ntuning: {trials: 1}\n",
        encoding="utf-8",
    )
    events = str(sim / "events.parquet")
    train_args = [
        "train",
        "--events",
        events,
        "--config",
        str(config),
        "--tracking-uri",
        uri,
        "--report-dir",
        str(tmp_path / "reports"),
        "--json",
    ]
    result = runner.invoke(app, train_args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["registered"] == {
        "lifecycle-next-stage": "1",
        "lifecycle-churn": "1",
        "lifecycle-clv": "1",
    }
    report = Path(summary["report"]).read_text(encoding="utf-8")
    assert summary["run_id"] in report and "data:image/png;base64," in report

    shown = runner.invoke(
        app, ["evaluate", "--run", summary["run_id"], "--tracking-uri", uri, "--json"]
    )
    assert shown.exit_code == 0, shown.output
    back = json.loads(shown.stdout)
    assert set(back["tasks"]) == {"next_stage", "churn", "clv"}
    # the evaluation scores come back from the run and redraw the report's figures
    for task, block in back["tasks"].items():
        scores = load_evaluation_scores(summary["run_id"], task, uri)
        assert len(scores) == block["rows"]["eval"]
        assert {"customer_id", "label", "score_model", "score_rfm"} <= set(scores.columns)
        table = metrics_table(back, task)
        assert table.loc["model", "n"] == len(scores)
        figures = evaluation_figures(task, scores)
        assert set(figures) == ({"deciles", "gain"} if task == "clv" else {"calibration", "gain"})

    no_champion = runner.invoke(
        app,
        ["score", "--events", events, "--out", str(tmp_path / "s.parquet"), "--tracking-uri", uri],
    )
    assert no_champion.exit_code == 2 and "champion" in no_champion.output

    promoted = runner.invoke(app, ["promote", "--tracking-uri", uri, "--json"])
    assert promoted.exit_code == 0, promoted.output

    too_early = tmp_path / "early.parquet"
    before = ["--cutoff", "2000-01-01", "--out", str(too_early), "--tracking-uri", uri]
    refused = runner.invoke(app, ["score", "--events", events, *before])
    assert refused.exit_code == 2 and "not after the first event" in refused.output
    assert not too_early.exists()

    scored = runner.invoke(
        app,
        [
            "score",
            "--events",
            events,
            "--out",
            str(tmp_path / "s.parquet"),
            "--tracking-uri",
            uri,
            "--json",
        ],
    )
    assert scored.exit_code == 0, scored.output
    scores = pd.read_parquet(tmp_path / "s.parquet")
    for column in (
        "next_stage_probability",
        "churn_risk",
        "clv",
        "clv_p10",
        "clv_p90",
        "rfm_segment",
    ):
        assert column in scores.columns
    assert scores["customer_id"].is_unique
    assert json.loads(scores["model_versions"].iloc[0])["lifecycle-churn"] == "1"
    buyers = scores["churn_risk"].notna()
    assert buyers.any() and scores.loc[buyers, "churn_risk"].between(0, 1).all()

    rollback = runner.invoke(app, ["rollback", "--tracking-uri", uri])
    assert rollback.exit_code == 2  # no earlier champion to go back to
    assert "Traceback" not in rollback.output

    # a second run: promote re-scores champion and challenger on the challenger's evaluation set
    again = runner.invoke(app, [*train_args[:-1], "--seed", "8", "--json"])
    assert again.exit_code == 0, again.output
    second = runner.invoke(app, ["promote", "--tracking-uri", uri, "--json"])
    assert second.exit_code in (0, 1), second.output
    assert "Traceback" not in second.output
    decisions = json.loads(second.stdout)["promotions"]
    assert {d["name"] for d in decisions} == set(summary["registered"])
    for decision in decisions:
        assert decision["champion"] == "1" and decision["challenger"] == "2"
        assert decision["status"] in ("promoted", "refused")
        assert decision["challenger_value"] is not None and decision["champion_value"] is not None
    moved = [d["name"] for d in decisions if d["status"] == "promoted"]
    if moved:
        back = runner.invoke(app, ["rollback", "--tracking-uri", uri, "--json"])
        assert back.exit_code == 0, back.output
        restored = runner.invoke(
            app,
            [
                "score",
                "--events",
                events,
                "--out",
                str(tmp_path / "s2.parquet"),
                "--tracking-uri",
                uri,
            ],
        )
        assert restored.exit_code == 0, restored.output
        versions = json.loads(pd.read_parquet(tmp_path / "s2.parquet")["model_versions"].iloc[0])
        assert all(versions[name] == "1" for name in moved)


def test_train_refuses_horizon_longer_than_data(sim: Path, tmp_path: Path) -> None:
    config = tmp_path / "training.yaml"
    config.write_text("tasks: [clv]\nhorizons: {clv_days: 1500}\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--events",
            str(sim / "events.parquet"),
            "--config",
            str(config),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
        ],
    )
    assert result.exit_code == 2
    assert "clv" in result.output and "horizon" in result.output
