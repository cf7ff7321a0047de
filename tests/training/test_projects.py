"""Two data sets in one MLflow store: each trained run keeps its project, data set and features.

Real training (tiny models) through ``lifecycle train`` into a real SQLite store under tmp_path:
a model of one shop must not replace the champion of another, and a project's service and
scoring load that project's champions only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.features.config import LifecycleConfig
from lifecycle.features.simulate import simulate
from lifecycle.models.store import (
    Lineage,
    feature_config_id,
    load_champions,
    open_store,
)
from lifecycle.serving.settings import ServeSettings, missing_models

pytestmark = pytest.mark.slow

runner = CliRunner()


def run(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def test_two_data_sets_in_one_store_refuse_a_cross_promotion(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "training.yaml"
    config.write_text(
        "max_train_cutoffs: 2\nreport_customer_split: false\nbaselines: [rfm]\n"
        "shap_sample: 100\ntuning: {trials: 1}\n",
        encoding="utf-8",
    )
    shops = {}
    for seed, shop in enumerate(["shop-a", "shop-b"]):
        simulate(1500, seed=20 + seed, out_dir=tmp_path / shop, days=1460)
        shops[shop] = str(tmp_path / shop / "events.parquet")
    common = ["--config", str(config), "--tracking-uri", uri, "--report-dir", str(tmp_path)]

    # shop A trains and is promoted in project retail (data set named after its folder)
    out = run("train", "--events", shops["shop-a"], "--project", "retail", *common, "--json")
    first = json.loads(out.stdout.strip().splitlines()[-1])
    assert first["registered"] == {"retail-next-stage": "1", "retail-churn": "1", "retail-clv": "1"}
    assert (first["project"], first["dataset"], first["experiment"]) == (
        "retail",
        "shop-a",
        "retail",
    )
    run("promote", "--project", "retail", "--tracking-uri", uri)

    client = open_store(uri)
    version = client.get_model_version("retail-churn", "1")
    lineage = Lineage.from_tags(version.tags)
    assert lineage.project == "retail" and lineage.dataset == "shop-a"
    assert lineage.feature_config == feature_config_id(LifecycleConfig())
    assert lineage.data_fingerprint and lineage.data_fingerprint.startswith("sha256:")
    run_tags = client.get_run(version.run_id).data.tags
    assert Lineage.from_tags(run_tags) == lineage
    assert client.get_experiment(client.get_run(version.run_id).info.experiment_id).name == "retail"

    # shop B, registered under the same project's names, is refused against shop A's champions
    out = run("train", "--events", shops["shop-b"], "--project", "retail", *common, "--json")
    refused = run("promote", "--project", "retail", "--tracking-uri", uri, "--json", code=1)
    decisions = json.loads(refused.stdout)["promotions"]
    assert len(decisions) == 3
    for decision in decisions:
        assert decision["status"] == "refused" and decision["champion"] == "1"
        assert "'shop-a'" in decision["reason"] and "'shop-b'" in decision["reason"]
        assert "differ in dataset" in decision["reason"]
    assert "--force" in refused.stderr
    assert all(
        client.get_registered_model(name).aliases["champion"] == 1
        for name in ("retail-next-stage", "retail-churn", "retail-clv")
    )

    # the same shop's newer snapshot (another fingerprint, same data set) is compared on scores
    run("train", "--events", shops["shop-a"], "--project", "retail", "--dataset", "shop-a",
        "--seed", "9", *common, "--json")  # fmt: skip
    again = runner.invoke(app, ["promote", "--project", "retail", "--tracking-uri", uri, "--json"])
    assert again.exit_code in (0, 1), again.output
    for decision in json.loads(again.stdout)["promotions"]:
        assert decision["challenger"] == "3" and "not comparable" not in decision["reason"]
        assert decision["challenger_value"] is not None

    # project lifecycle has nothing: scoring and serving it fail with the project's names
    settings = ServeSettings(tracking_uri=uri)
    assert "lifecycle-next-stage" in (missing_models(settings) or "")
    retail = ServeSettings(tracking_uri=uri, project="retail")
    assert missing_models(retail) is None
    loaded = load_champions(client, project=retail.project)
    assert {m.name for m in loaded.values()} == {"retail-next-stage", "retail-churn", "retail-clv"}
    assert {m.record.dataset for m in loaded.values()} == {"shop-a"}
    out_file = str(tmp_path / "scores.parquet")
    scoring = ["score", "--events", shops["shop-a"], "--out", out_file, "--tracking-uri", uri]
    assert "retail-churn" in run(*scoring, "--project", "retail", "--json").stdout
    missing = run(*scoring, code=2)
    assert "lifecycle-next-stage" in missing.stderr or "project lifecycle" in missing.stderr
