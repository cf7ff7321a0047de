"""`lifecycle plan` end to end: a small trained world, a plan within budget, its CSV, and the
offline evaluation against the simulator's truth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.cli.options import EXIT_USAGE
from lifecycle.features.simulate import simulate
from lifecycle.training.uplift import learn_uplift

runner = CliRunner()


@dataclass(frozen=True)
class World:
    sim: Path
    uri: str
    lookup: Path
    uplift_run: str
    logged: dict[str, Any] | None


def _run(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("plan_world")
    simulate(2000, seed=7, out_dir=root / "sim")
    events = str(root / "sim" / "events.parquet")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = root / "training.yaml"
    config.write_text(
        "max_train_cutoffs: 2\nreport_customer_split: false\nbaselines: [rfm]\n"
        "shap_sample: 100\ntuning: {trials: 1}\n",
        encoding="utf-8",
    )
    common = ["--tracking-uri", uri]
    _run(["train", "--events", events, "--config", str(config), "--json", *common])
    _run(["promote", *common])
    # the library call: its run logs the policy evaluation, with the truth
    uplift = learn_uplift(
        events,
        root / "sim" / "campaigns.parquet",
        tracking_uri=uri,
        truth=root / "sim" / "truth.parquet",
        max_campaigns=6,
    )
    lookup = root / "scores.parquet"
    _run(["score", "--events", events, "--out", str(lookup), "--json", *common])
    return World(root / "sim", uri, lookup, uplift.run_id, uplift.policy_evaluation)


def test_plan_count_budget_writes_the_contacts_and_evaluates(world: World, tmp_path: Path) -> None:
    out = tmp_path / "plan.csv"
    stdout = _run(
        [
            *("plan", "--budget", "150", "--lookup", str(world.lookup)),
            *("--events", str(world.sim / "events.parquet")),
            *("--campaigns", str(world.sim / "campaigns.parquet")),
            *("--truth", str(world.sim / "truth.parquet"), "--max-campaigns", "6"),
            *("--cost-per-action", "win_back=2", "--out", str(out)),
            *("--tracking-uri", world.uri, "--json"),
        ]
    )
    summary = json.loads(stdout.strip().splitlines()[-1])
    totals = summary["plan"]["totals"]
    assert 0 < totals["contacts"] <= 150
    written = pd.read_csv(out)
    assert len(written) == totals["contacts"]
    assert (written["net_value"] > 0).all()
    assert written.loc[written["action"] == "win_back", "cost"].eq(2.0).all()
    per_action = summary["plan"]["actions"]
    assert sum(a["customers"] for a in per_action) == totals["contacts"]
    for action in per_action:
        assert action["net_low"] <= action["net_value"] <= action["net_high"]
    policies = {p["policy"]: p for p in summary["evaluation"]["policies"]}
    assert set(policies) == {"plan", "send_nothing", "random", "churn_risk", "clv", "oracle"}
    assert all(p["true_value"] is not None for p in policies.values())


def test_plan_money_budget_prints_the_tables(world: World) -> None:
    stdout = _run(
        [
            *("plan", "--budget", "100", "--budget-kind", "money"),
            *("--lookup", str(world.lookup), "--tracking-uri", world.uri),
        ]
    )
    assert "Plan (USD" in stdout and "left alone:" in stdout
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("planned ")
    spent = float(last.split(" for ")[1].split(" USD")[0].replace(",", ""))
    assert 0 < spent <= 100


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cost-per-action", "nope=1"], "unknown action"),
        (["--cost-per-action", "win_back"], "expected action=cost"),
        (["--budget-kind", "hours"], "--budget-kind must be count or money"),
        (["--campaigns", "{campaigns}"], "--campaigns needs --events"),
    ],
)
def test_plan_bad_options_are_usage_errors(world: World, extra: list[str], message: str) -> None:
    args = [a.replace("{campaigns}", str(world.sim / "campaigns.parquet")) for a in extra]
    result = runner.invoke(
        app,
        [
            "plan",
            "--budget",
            "10",
            "--lookup",
            str(world.lookup),
            "--tracking-uri",
            world.uri,
            *args,
        ],
    )
    assert result.exit_code == EXIT_USAGE
    assert message in result.output


def test_uplift_run_logs_the_policy_evaluation(world: World) -> None:
    from mlflow import MlflowClient

    assert world.logged is not None
    policies = {p["policy"]: p for p in world.logged["policies"]}
    assert policies["plan"]["contacts"] <= 0.1 + 1e-9
    assert policies["oracle"]["true_value"] is not None
    client = MlflowClient(world.uri)
    run = client.get_run(world.uplift_run)
    assert run.data.tags["policy_evaluation"] == "logged"
    assert run.data.params["policy_share"] == "0.1"
    assert run.data.metrics["policy.plan.dr_value"] == pytest.approx(policies["plan"]["dr_value"])
    assert run.data.metrics["policy.oracle.true_value"] == pytest.approx(
        policies["oracle"]["true_value"]
    )
    assert {"policy_evaluation.csv", "policy_evaluation.json"} <= {
        a.path for a in client.list_artifacts(world.uplift_run)
    }
