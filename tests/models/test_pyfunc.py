"""The registered pyfunc as an MLflow user calls it, on the tables the project writes.

One small simulation, one `lifecycle train` into a real SQLite MLflow store, `lifecycle promote`,
`lifecycle score` and `lifecycle features`; then `mlflow.pyfunc.load_model(...).predict(table)`
on those Parquet files read as they were written.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.types import ColSpec, Schema
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.features.simulate import simulate
from lifecycle.models.pyfunc import conform
from lifecycle.models.tasks import spec

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pyfunc")
    simulate(1500, seed=5, out_dir=folder / "sim", days=1460)
    events = str(folder / "sim" / "events.parquet")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = folder / "training.yaml"
    config.write_text(
        "max_train_cutoffs: 2\nreport_customer_split: true\nbaselines: [rfm]\n"
        "shap_sample: 100\ntuning: {trials: 1}\n",
        encoding="utf-8",
    )
    common = ["--tracking-uri", uri]
    trained = runner.invoke(
        app,
        [
            "train",
            *("--events", events, "--config", str(config)),
            *("--report-dir", str(folder / "reports"), "--json", *common),
        ],
    )
    assert trained.exit_code == 0, trained.output
    run_id = json.loads(trained.stdout.strip().splitlines()[-1])["run_id"]
    assert runner.invoke(app, ["promote", *common]).exit_code == 0
    scores = folder / "scores.parquet"
    scored = runner.invoke(app, ["score", "--events", events, "--out", str(scores), *common])
    assert scored.exit_code == 0, scored.output
    features = folder / "features.parquet"
    built = runner.invoke(
        app,
        ["features", "--events", events, "--out", str(features), "--cutoff", "2025-06-01"],
    )
    assert built.exit_code == 0, built.output
    mlflow.set_tracking_uri(uri)
    return {"uri": uri, "run_id": run_id, "scores": scores, "features": features}


@pytest.mark.parametrize("task", ["next_stage", "churn", "clv"])
def test_pyfunc_predicts_on_a_scores_table_as_written(store, task):
    table = pd.read_parquet(store["scores"])
    model = mlflow.pyfunc.load_model(f"models:/{spec(task).registered_name}@champion")
    out = model.predict(table)
    assert list(out.columns) == list(spec(task).outputs)
    for column in out.columns:  # the same numbers `lifecycle score` wrote
        np.testing.assert_allclose(out[column], table[column], rtol=1e-9, equal_nan=True)


def test_pyfunc_predicts_on_a_features_table_as_written(store):
    table = pd.read_parquet(store["features"])
    assert (table.dtypes == "int64").any()  # the builder writes counts as integers
    model = mlflow.pyfunc.load_model("models:/lifecycle-churn@champion")
    out = model.predict(table)
    assert len(out) == len(table)
    assert out["churn_risk"].notna().any()
    assert out["churn_risk"].dropna().between(0, 1).all()


def test_signature_types_features_as_the_builder_writes_them(store):
    table = pd.read_parquet(store["features"])
    model = mlflow.pyfunc.load_model("models:/lifecycle-clv@champion")
    schema = model.metadata.get_input_schema()
    declared = {c.name: str(c.type).removeprefix("DataType.") for c in schema.inputs}
    written = {c: "long" if table[c].dtype.kind == "i" else "double" for c in declared}
    assert declared == written
    assert "long" in declared.values() and "double" in declared.values()


def test_pyfunc_still_refuses_a_table_without_its_features(store):
    table = pd.read_parquet(store["scores"]).drop(columns="n_purchases")
    model = mlflow.pyfunc.load_model("models:/lifecycle-churn@champion")
    with pytest.raises(MlflowException, match="n_purchases"):
        model.predict(table)


def test_evaluate_prints_every_protocol_the_run_logged(store):
    shown = runner.invoke(
        app, ["evaluate", "--run", store["run_id"], "--tracking-uri", store["uri"]]
    )
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    for task in ("next_stage", "churn", "clv"):
        assert f"{task} (" in text
    assert text.count("time-honest protocol") == 3
    assert text.count("customer-split protocol, not time-honest") == 3


def test_conform_makes_integers_float_only_where_the_schema_says_double():
    frame = pd.DataFrame({"n": [1, 2], "k": [3, 4], "x": [0.5, 1.5], "extra": [7, 8]})
    schema = Schema([ColSpec("double", "n"), ColSpec("long", "k"), ColSpec("double", "x")])
    out = conform(frame, schema)
    assert out.dtypes.astype(str).to_dict() == {
        "n": "float64",
        "k": "int64",
        "x": "float64",
        "extra": "int64",
    }
    assert frame["n"].dtype == "int64"  # the input is not changed
    assert conform(frame, None) is frame
