"""MLflow tracking and registry moves, against a real MLflow on SQLite under tmp_path."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import signal
import subprocess
import sys
from importlib.metadata import version as package_version
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from lifecycle.cli.registry import promote as promote_command
from lifecycle.cli.registry import rollback as rollback_command
from lifecycle.features.config import LifecycleConfig
from lifecycle.models.lgbm import ClvRegressor, LifecycleClassifier
from lifecycle.models.store import (
    CHALLENGER,
    CHAMPION,
    Lineage,
    ModelRecord,
    StoreError,
    artifact_root_for,
    connect,
    feature_config_id,
    load_champions,
    open_store,
    registered_names,
    resolve_tracking_uri,
)
from lifecycle.serving.settings import ServeSettings, missing_models
from lifecycle.training import tracking
from lifecycle.training.tracking import (
    HISTORY_TAG,
    LineageError,
    RegistryError,
    experiment_id,
    log_estimator,
    promote,
    rollback,
)

FEATURES = ["x1", "x2"]
N_ROWS = 600

cli = typer.Typer()
cli.command("promote")(promote_command)
cli.command("rollback")(rollback_command)
runner = CliRunner()


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features where x1 drives churn and CLV and x2 is noise; churn and CLV labels."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "stage_code": 2,
            "n_purchases": 1,
        }
    )
    churned = (frame["x1"] + 0.5 * rng.normal(size=n) > 0).to_numpy(float)
    clv = np.exp(frame["x1"].to_numpy()) * rng.gamma(2.0, 1.0, size=n)
    return frame, churned, clv


@pytest.fixture(scope="module")
def estimators() -> dict[str, object]:
    frame, churned, clv = synthetic(N_ROWS, seed=0)
    small = {"num_leaves": 4, "min_child_samples": 10}
    fit = {"num_boost_round": 40, "early_stopping_rounds": 10}
    train, valid = frame[:400], frame[400:]

    def classifier(features: list[str]) -> LifecycleClassifier:
        model = LifecycleClassifier(
            "churn", features, params=small, calibration="sigmoid", threads=1, **fit
        )
        return model.fit(train, churned[:400], valid, churned[400:])

    clv_model = ClvRegressor(FEATURES, params=small, threads=1, **fit)
    return {
        "good": classifier(FEATURES),
        "bad": classifier(["x2"]),  # the noise feature only: ROC AUC about 0.5
        # its signature lists every column it reads, so load_version accepts it
        "loadable": classifier([*FEATURES, "stage_code", "n_purchases"]),
        "clv": clv_model.fit(train, clv[:400], valid, clv[400:]),
        "loadable_clv": ClvRegressor(
            [*FEATURES, "stage_code", "n_purchases"], params=small, threads=1, **fit
        ).fit(train, clv[:400], valid, clv[400:]),
    }


@pytest.fixture(scope="module")
def evaluation() -> dict[str, pd.DataFrame]:
    frame, churned, clv = synthetic(300, seed=2)
    return {"churn": frame.assign(label=churned), "clv": frame.assign(label=clv)}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    client = connect(uri)
    yield client, uri, folder
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def register(store, estimator, evaluation_set, *, name: str, task: str = "churn") -> str:
    """Log an estimator and its evaluation set in a new run; return the new version."""
    client, _, _ = store
    with mlflow.start_run(experiment_id=experiment_id(client, "tests")):
        mlflow.log_dict({}, tracking.SUMMARY_FILE)  # promote takes finished runs' versions only
        tracking.log_evaluation_set(task, evaluation_set)
        version = log_estimator(
            estimator,
            task=task,
            registered_name=name,
            input_example=evaluation_set.drop(columns="label"),
            tags={"eval_cutoff": "2025-01-01"},
        )
    return str(version.version)


def aliases(client, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def invoke(uri: str, *args: str):
    result = runner.invoke(cli, [*args, "--tracking-uri", uri])
    assert "Traceback" not in result.output + result.stderr
    return result


def test_resolve_tracking_uri_prefers_explicit_then_env_then_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = resolve_tracking_uri()
    assert default == f"sqlite:///{tmp_path}/mlflow.db"
    assert artifact_root_for(default) == (tmp_path / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert resolve_tracking_uri() == "http://tracking:5000"
    assert resolve_tracking_uri("sqlite:////srv/m.db") == "sqlite:////srv/m.db"
    assert artifact_root_for("http://tracking:5000") is None


def test_experiment_id_gets_or_creates_with_artifacts_beside_the_database(store):
    client, uri, folder = store
    first = experiment_id(client, "lifecycle tests")
    assert experiment_id(client, "lifecycle tests") == first
    location = client.get_experiment(first).artifact_location
    assert location == f"{artifact_root_for(uri)}/lifecycle-tests"
    assert location.startswith((folder / "mlartifacts").as_uri())


def test_log_functions_write_what_reads_back(store, tmp_path):
    client, _, _ = store
    trials = pd.DataFrame(
        {
            "number": [0, 1],
            "value": [0.71, 0.74],
            "params_num_leaves": [15, 31],
            "datetime_start": pd.to_datetime(["2025-01-01 10:00", "2025-01-01 10:01"]),
        }
    )
    evaluation_set = pd.DataFrame({"x1": [0.1, 0.2], "label": [0.0, 1.0]})
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.md").write_text("# report\n")
    with mlflow.start_run(experiment_id=experiment_id(client, "tests")) as run:
        logged = tracking.log_params({"churn": {"num_leaves": 31, "note": "x" * 7000}})
        metrics = tracking.log_metrics(
            {"churn": {"test": {"roc_auc": 0.81, "ece": float("nan"), "n": 300}}, "skip": None}
        )
        tracking.log_config({"horizon_days": 90, "out": tmp_path / "out"})
        tracking.log_data_fingerprint({"events_sha256": "abc", "rows": 1234})
        tags = tracking.log_git_commit(tmp_path)
        tracking.log_table(trials, "tuning/churn_trials.csv")
        tracking.log_table(trials, "tuning/churn_trials.json")
        tracking.log_evaluation_set("churn", evaluation_set)
        tracking.log_files(tmp_path / "report", "report")
        with pytest.raises(TypeError, match="not a number"):
            tracking.log_metrics({"churn": {"grade": "high"}})
    assert logged["churn.num_leaves"] == "31"
    assert metrics == {"churn.test.roc_auc": 0.81, "churn.test.n": 300.0}
    assert tags == {"git_commit": "unknown", "git_dirty": "unknown"}

    data = client.get_run(run.info.run_id).data
    assert data.params["churn.num_leaves"] == "31"
    assert len(data.params["churn.note"]) == 6000
    assert data.params["data.rows"] == "1234"
    assert data.metrics == {"churn.test.roc_auc": 0.81, "churn.test.n": 300.0}
    assert data.tags["git_commit"] == "unknown"

    down = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=tmp_path))
    assert "horizon_days: 90" in (down / "config.yaml").read_text()
    assert json.loads((down / "data_fingerprint.json").read_text())["rows"] == 1234
    assert pd.read_csv(down / "tuning" / "churn_trials.csv")["value"].tolist() == [0.71, 0.74]
    table = json.loads((down / "tuning" / "churn_trials.json").read_text())
    assert table["columns"][:2] == ["number", "value"] and len(table["data"]) == 2
    pd.testing.assert_frame_equal(
        pd.read_parquet(down / "evaluation" / "churn.parquet"), evaluation_set
    )
    assert (down / "report" / "summary.md").read_text() == "# report\n"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_log_git_commit_tags_commit_and_dirty_state(store, tmp_path):
    client, _, _ = store
    git = [shutil.which("git"), "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("a\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    with mlflow.start_run(experiment_id=experiment_id(client, "tests")) as run:
        clean = tracking.log_git_commit(tmp_path)
        (tmp_path / "a.txt").write_text("b\n")
        dirty = tracking.log_git_commit(tmp_path)
    assert clean == {"git_commit": head.stdout.strip(), "git_dirty": "false"}
    assert dirty == {"git_commit": head.stdout.strip(), "git_dirty": "true"}
    assert client.get_run(run.info.run_id).data.tags["git_dirty"] == "true"


def test_log_estimator_registers_a_challenger_that_loads(store, estimators, evaluation):
    client, _, _ = store
    version = register(store, estimators["good"], evaluation["churn"], name="lifecycle-churn")
    mv = client.get_model_version("lifecycle-churn", version)
    assert CHALLENGER in mv.aliases
    assert mv.tags["task"] == "churn" and mv.tags["eval_cutoff"] == "2025-01-01"
    assert mv.tags["run_id"] == mv.run_id

    loaded = mlflow.pyfunc.load_model("models:/lifecycle-churn@challenger")
    features = evaluation["churn"].drop(columns="label").head(4).assign(n_purchases=[1, 1, 1, 0])
    predicted = loaded.predict(features)
    expected = estimators["good"].predict_frame(features)
    pd.testing.assert_frame_equal(predicted, expected)
    assert np.isnan(predicted["churn_risk"].iloc[3])
    assert hasattr(loaded.unwrap_python_model().estimator, "booster_")
    inputs = loaded.metadata.get_model_info().signature.inputs.input_names()
    assert inputs == ["x1", "x2", "stage_code", "n_purchases"]
    requirements = Path(mlflow.pyfunc.get_model_dependencies("models:/lifecycle-churn@challenger"))
    assert f"lightgbm=={package_version('lightgbm')}" in requirements.read_text().splitlines()


def test_promote_first_champion_then_refuses_a_worse_challenger(store, estimators, evaluation):
    client, uri, _ = store
    name = "churn-refuse"
    good = register(store, estimators["good"], evaluation["churn"], name=name)
    [first] = promote(client, [name])
    assert (first.status, first.challenger, first.champion) == ("first champion", good, None)
    assert first.challenger_value > 0.8
    assert aliases(client, name) == {CHAMPION: good}

    bad = register(store, estimators["bad"], evaluation["churn"], name=name)
    result = invoke(uri, "promote", "--model", name, "--json")
    assert result.exit_code == 1
    assert "--force" in result.stderr
    [refused] = json.loads(result.stdout)["promotions"]
    assert refused["status"] == "refused"
    assert refused["metric"] == "roc_auc"
    assert refused["challenger_value"] < 0.6 < 0.8 < refused["champion_value"]
    assert aliases(client, name) == {CHAMPION: good, CHALLENGER: bad}

    result = invoke(uri, "promote", "--model", name, "--force")
    assert result.exit_code == 0, result.stderr
    assert "forced" in result.stdout
    assert aliases(client, name) == {CHAMPION: bad}
    assert json.loads(client.get_registered_model(name).tags[HISTORY_TAG]) == [good]


def test_promote_clv_compares_mae_with_relative_tolerance(store, estimators, evaluation):
    client, _, _ = store
    name = "clv-promote"
    first = register(store, estimators["clv"], evaluation["clv"], name=name, task="clv")
    promote(client, [name])
    second = register(store, estimators["clv"], evaluation["clv"], name=name, task="clv")
    [same] = promote(client, [name])
    assert same.metric == "mae" and same.tolerance == 0.02
    assert same.challenger_value == pytest.approx(same.champion_value)
    assert same.status == "promoted"
    assert aliases(client, name) == {CHAMPION: second}
    assert json.loads(client.get_registered_model(name).tags[HISTORY_TAG]) == [first]


def test_rollback_restores_the_previous_champion(store, estimators, evaluation):
    client, uri, _ = store
    name = "churn-rollback"
    v1 = register(store, estimators["good"], evaluation["churn"], name=name)
    promote(client, [name])
    v2 = register(store, estimators["good"], evaluation["churn"], name=name)
    [promoted] = promote(client, [name])
    assert promoted.status == "promoted"
    assert aliases(client, name) == {CHAMPION: v2}

    result = invoke(uri, "rollback", "--model", name)
    assert result.exit_code == 0, result.stderr
    assert f"v{v1}" in result.stdout
    assert aliases(client, name) == {CHAMPION: v1}
    assert json.loads(client.get_registered_model(name).tags[HISTORY_TAG]) == []

    result = invoke(uri, "rollback", "--model", name)
    assert result.exit_code == 2
    assert name in result.stderr and "no earlier champion" in result.stderr
    with pytest.raises(RegistryError, match=name):
        rollback(client, [name])


def test_registry_commands_fail_cleanly(store, tmp_path):
    _, uri, _ = store
    result = invoke(uri, "promote", "--model", "no-such-model")
    assert result.exit_code == 2
    assert "no registered model named 'no-such-model'" in result.stderr

    result = invoke(f"sqlite:///{tmp_path / 'missing.db'}", "rollback")
    assert result.exit_code == 2
    assert "no MLflow store" in result.stderr
    assert not (tmp_path / "missing.db").exists()

    result = invoke("http://127.0.0.1:9", "promote")  # nothing listens on port 9
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot reach the MLflow server at http://127.0.0.1:9")
    assert len(result.stderr.strip().splitlines()) == 1


WORKER = """
import time
from pathlib import Path

import joblib
import mlflow
import pandas as pd

from lifecycle.models.store import connect
from lifecycle.training.tracking import experiment_id, log_estimator, log_metrics, log_params

estimator = joblib.load(estimator_path)
example = pd.read_parquet(example_path)
Path(ready, str(index)).touch()
while len(list(Path(ready).iterdir())) < 3:  # start together
    time.sleep(0.01)
client = connect(uri)
with mlflow.start_run(experiment_id=experiment_id(client, "concurrent")):
    log_params({"worker": index, "lgbm": {f"p{i}": i for i in range(150)}})
    for step in range(20):
        log_metrics({"valid": {"loss": 1 / (step + 1), "auc": 0.5 + step / 100}}, step=step)
    log_estimator(estimator, task="churn", registered_name="lifecycle-churn", input_example=example)
"""


def test_concurrent_runs_on_a_fresh_sqlite_database_all_succeed(
    tmp_path, estimators, evaluation, monkeypatch
):
    # Three processes (like three `lifecycle train` runs) create the schema, the experiment, a
    # run and a registered version at once. A forkserver imports MLflow once and forks clean
    # children from it (no state of this process), which saves two slow imports.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "store" / "mlflow.db"
    joblib.dump(estimators["good"], tmp_path / "estimator.joblib")
    evaluation["churn"].drop(columns="label").to_parquet(tmp_path / "example.parquet")
    (tmp_path / "ready").mkdir()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["mlflow.pyfunc", "lifecycle.training.tracking", "lifecycle.models.pyfunc"]
    )
    workers = []
    for index in range(3):
        names = {
            "uri": f"sqlite:///{db}",
            "estimator_path": str(tmp_path / "estimator.joblib"),
            "example_path": str(tmp_path / "example.parquet"),
            "ready": str(tmp_path / "ready"),
            "index": index,
        }
        workers.append(context.Process(target=exec, args=(WORKER, names)))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert [w.exitcode for w in workers] == [0, 0, 0], "see the captured stderr"

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    versions = client.search_model_versions("name='lifecycle-churn'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]
    [experiment] = [e for e in client.search_experiments() if e.name == "concurrent"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["worker"] for r in runs) == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(len(client.get_metric_history(r.info.run_id, "valid.loss")) == 20 for r in runs)
    assert all(
        r.info.artifact_uri.startswith((db.parent / "mlartifacts" / "concurrent").as_uri())
        for r in runs
    )


# --- projects and lineage: several data sets in one store -------------------------------------


def register_in(
    store,
    estimator,
    evaluation_set,
    *,
    name: str,
    lineage: Lineage | None,
    task: str = "churn",
    record: bool = False,
) -> str:
    """Log an estimator with a lineage (and, when asked, a record) in a new run."""
    client, _, _ = store
    features = evaluation_set.drop(columns="label")
    if record:  # a loadable version's signature lists its features, as doubles
        features = features[estimator.feature_names].astype("float64")
        evaluation_set = features.assign(label=evaluation_set["label"])
    with mlflow.start_run(experiment_id=experiment_id(client, "projects")) as run:
        if lineage is not None:
            tracking.log_lineage(lineage)
        mlflow.log_dict({}, tracking.SUMMARY_FILE)
        tracking.log_evaluation_set(task, evaluation_set)
        version = log_estimator(
            estimator,
            task=task,
            registered_name=name,
            input_example=features,
            lineage=lineage,
            record=model_record(estimator, run.info.run_id, lineage) if record else None,
        )
    return str(version.version)


def model_record(estimator, run_id: str, lineage: Lineage | None) -> ModelRecord:
    lineage = lineage or Lineage()
    return ModelRecord(
        task=estimator.task,
        run_id=run_id,
        lifecycle=LifecycleConfig(),
        feature_names=tuple(estimator.feature_names),
        horizon_days=90,
        protocol="time",
        trained_on=("2024-06-01",),
        validated_on="2024-09-01",
        evaluated_on="2024-12-01",
        metrics={"roc_auc": 0.8},
        typical={},
        project=lineage.project,
        dataset=lineage.dataset,
        feature_config=lineage.feature_config,
        data_fingerprint=lineage.data_fingerprint,
    )


FEATURES_ID = "sha256:0000000000000001"


def test_registered_names_follow_the_project():
    assert registered_names() == {
        "next_stage": "lifecycle-next-stage",
        "churn": "lifecycle-churn",
        "clv": "lifecycle-clv",
    }
    assert registered_names("retail-eu") == {
        "next_stage": "retail-eu-next-stage",
        "churn": "retail-eu-churn",
        "clv": "retail-eu-clv",
    }
    for bad in ["Retail", "retail_eu", "-retail", "retail-", "re--tail", "1retail", "", "r" * 41]:
        with pytest.raises(ValueError, match="lowercase letters"):
            registered_names(bad)
    assert ServeSettings(project="retail").registered_names()["clv"] == "retail-clv"
    assert ServeSettings(project="retail", model_names={"clv": "x"}).registered_names() == {
        "next_stage": "retail-next-stage",
        "churn": "retail-churn",
        "clv": "x",
    }


def test_default_dataset_names_the_source():
    assert tracking.default_dataset("data/sim/events.parquet") == "sim"
    assert tracking.default_dataset("/srv/exports/orders 2024.csv") == "orders-2024"
    assert tracking.default_dataset("x.csv", "online_retail") == "online_retail"
    assert tracking.default_dataset("x.csv", "maps/my shop.yaml") == "my-shop"
    assert tracking.default_dataset(pd.DataFrame()) is None
    assert tracking.default_dataset("postgresql://host/db") is None


def test_feature_config_id_changes_with_the_feature_configuration():
    base = LifecycleConfig()
    assert feature_config_id(base) == feature_config_id(LifecycleConfig())
    windows = base.features.model_copy(update={"windows_days": (7, 30)})
    assert feature_config_id(base.model_copy(update={"features": windows})) != feature_config_id(
        base
    )


def test_lineage_is_tagged_on_the_run_and_the_version(store, estimators, evaluation):
    client, _, _ = store
    lineage = Lineage("tagged", "online_retail", FEATURES_ID, "sha256:aa", "online_retail")
    version = register_in(
        store, estimators["loadable"], evaluation["churn"], name="tagged-churn", lineage=lineage
    )
    mv = client.get_model_version("tagged-churn", version)
    expected = {
        "lifecycle.project": "tagged",
        "lifecycle.dataset": "online_retail",
        "lifecycle.feature_config": FEATURES_ID,
        "lifecycle.data_fingerprint": "sha256:aa",
        "lifecycle.mapping": "online_retail",
    }
    assert {k: v for k, v in mv.tags.items() if k.startswith("lifecycle.")} == expected
    run_tags = client.get_run(mv.run_id).data.tags
    assert {k: v for k, v in run_tags.items() if k.startswith("lifecycle.")} == expected
    assert Lineage.from_tags(mv.tags) == lineage
    assert Lineage.from_tags({}) == Lineage("lifecycle", None, None, None, None)


@pytest.mark.parametrize("differs", ["dataset", "feature_config"])
def test_promote_refuses_a_challenger_of_another_data_set_unless_forced(
    store, estimators, evaluation, differs
):
    client, uri, _ = store
    project = f"cross-{differs.replace('_', '-')}"
    name = f"{project}-churn"
    retail = Lineage(project, "online_retail", FEATURES_ID, "sha256:aa")
    other = (
        Lineage(project, "cdnow", FEATURES_ID, "sha256:bb")
        if differs == "dataset"
        else Lineage(project, "online_retail", "sha256:0000000000000002", "sha256:aa")
    )
    champion = register_in(
        store, estimators["loadable"], evaluation["churn"], name=name, lineage=retail
    )
    result = invoke(uri, "promote", "--project", project, "--json")
    assert result.exit_code == 0, result.stderr
    assert aliases(client, name) == {CHAMPION: champion}

    # the challenger is as good (the same model): only its lineage stands in the way
    challenger = register_in(
        store, estimators["loadable"], evaluation["churn"], name=name, lineage=other
    )
    result = invoke(uri, "promote", "--project", project, "--json")
    assert result.exit_code == 1
    [refused] = json.loads(result.stdout)["promotions"]
    assert refused["status"] == "refused"
    assert refused["challenger_value"] is None  # not scored on another data set's rows
    assert f"differ in {differs}" in refused["reason"]
    assert other.describe() in refused["reason"] and retail.describe() in refused["reason"]
    assert f"{name} v{challenger}" in result.stderr and f"champion v{champion}" in result.stderr
    assert "--force" in result.stderr
    assert aliases(client, name) == {CHAMPION: champion, CHALLENGER: challenger}

    result = invoke(uri, "promote", "--project", project, "--force", "--json")
    assert result.exit_code == 0, result.stderr
    [forced] = json.loads(result.stdout)["promotions"]
    assert forced["status"] == "forced" and f"differ in {differs}" in forced["reason"]
    assert aliases(client, name) == {CHAMPION: challenger}

    # rolling back would cross back to the other data set: the same guard
    result = invoke(uri, "rollback", "--project", project)
    assert result.exit_code == 1
    assert "not rolling back" in result.stderr and "--force" in result.stderr
    assert aliases(client, name) == {CHAMPION: challenger}
    with pytest.raises(LineageError, match=f"differ in {differs}"):
        rollback(client, project=project)
    result = invoke(uri, "rollback", "--project", project, "--force")
    assert result.exit_code == 0, result.stderr
    assert aliases(client, name) == {CHAMPION: champion}


def test_promote_accepts_a_new_snapshot_of_the_same_data_set(store, estimators, evaluation):
    client, _, _ = store
    name = "snapshots-churn"
    first = Lineage("snapshots", "online_retail", FEATURES_ID, "sha256:2024-11")
    newer = Lineage("snapshots", "online_retail", FEATURES_ID, "sha256:2024-12")
    register_in(store, estimators["loadable"], evaluation["churn"], name=name, lineage=first)
    promote(client, project="snapshots")
    second = register_in(
        store, estimators["loadable"], evaluation["churn"], name=name, lineage=newer
    )
    [promoted] = promote(client, project="snapshots")
    assert promoted.status == "promoted", promoted.reason
    assert "not checked" not in promoted.reason
    assert aliases(client, name) == {CHAMPION: second}


def test_promote_over_an_untagged_champion_says_what_was_not_checked(store, estimators, evaluation):
    client, _, _ = store
    name = "legacy-churn"  # in the default project; its champion predates lineage tags
    model, rows = estimators["loadable"], evaluation["churn"]
    old = register_in(store, model, rows, name=name, lineage=None)
    promote(client, [name])
    assert Lineage.from_tags(client.get_model_version(name, old).tags).dataset is None
    new = register_in(
        store, model, rows, name=name, lineage=Lineage("lifecycle", "sim", FEATURES_ID, "sha256:cc")
    )
    [promoted] = promote(client, [name])
    assert promoted.status == "promoted"
    assert f"v{old} records no dataset, feature_config" in promoted.reason
    assert "read as project lifecycle" in promoted.reason
    assert aliases(client, name) == {CHAMPION: new}


def test_projects_keep_their_own_models(store, estimators, evaluation, tmp_path):
    client, uri, _ = store
    a = Lineage("unit-a", "shop_a", FEATURES_ID, "sha256:a")
    b = Lineage("unit-b", "shop_b", FEATURES_ID, "sha256:b")
    va = register_in(
        store,
        estimators["loadable"],
        evaluation["churn"],
        name="unit-a-churn",
        lineage=a,
        record=True,
    )
    vb = register_in(
        store,
        estimators["loadable"],
        evaluation["churn"],
        name="unit-b-churn",
        lineage=b,
        record=True,
    )
    result = invoke(uri, "promote", "--project", "unit-a")
    assert result.exit_code == 0, result.stderr
    assert aliases(client, "unit-a-churn") == {CHAMPION: va}
    assert aliases(client, "unit-b-churn") == {CHALLENGER: vb}  # another project: untouched

    # naming another project's model is an error, not a move
    result = invoke(uri, "promote", "--project", "unit-a", "--model", "unit-b-churn")
    assert result.exit_code == 2
    assert "belongs to project 'unit-b'" in result.stderr and "--project unit-b" in result.stderr
    result = invoke(uri, "promote", "--project", "Unit_B")
    assert result.exit_code == 2 and "lowercase letters" in result.stderr
    assert aliases(client, "unit-b-churn") == {CHALLENGER: vb}

    promote(client, project="unit-b")
    # the service of a project loads that project's champions
    settings = ServeSettings(project="unit-b", tracking_uri=uri)
    loaded = load_champions(
        open_store(uri), project=settings.project, names=settings.model_names, tasks=["churn"]
    )
    assert (loaded["churn"].name, loaded["churn"].version) == ("unit-b-churn", vb)
    assert loaded["churn"].record.lineage() == b
    missing = missing_models(settings)
    assert "unit-b-next-stage, unit-b-clv" in missing and "unit-b-churn" not in missing
    with pytest.raises(StoreError, match="belongs to project 'unit-a', not 'unit-b'"):
        load_champions(client, project="unit-b", names={"churn": "unit-a-churn"}, tasks=["churn"])


def test_the_event_log_is_an_mlflow_dataset_input_with_its_fingerprint(store, tmp_path):
    client, _, _ = store
    log = tmp_path / "orders.parquet"
    pd.DataFrame({"customer_id": ["a"]}).to_parquet(log)
    data = {
        "fingerprint": "sha256:" + "ab12" * 16,
        "source": str(log),
        "rows": 1234,
        "customers": 56,
        "period_start": "2024-01-01T00:00:00+00:00",
        "period_end": "2024-12-31T00:00:00+00:00",
    }
    name = tracking.run_name("train", "orders", "hybrid", "eval-2024-12-01")
    with mlflow.start_run(experiment_id=experiment_id(client, "tests"), run_name=name) as run:
        tracking.log_event_log_input(data, dataset="orders")
        tracking.log_event_log_input({**data, "source": "in memory"}, dataset=None)
    got = client.get_run(run.info.run_id)
    assert got.info.run_name == "train-orders-hybrid-eval-2024-12-01"
    inputs = got.inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["orders", "in memory"]
    first = inputs[0]
    assert first.dataset.digest == "ab12" * 4 and str(log) in first.dataset.source
    tags = {t.key: t.value for t in first.tags}
    assert tags["fingerprint"] == data["fingerprint"] and tags["rows"] == "1234"
    assert tags["mlflow.data.context"] == "training"


# --- promotion is one consistent set (issue 17, point 2) --------------------------------------

SETS = Lineage("sets", "shop", FEATURES_ID, "sha256:s")
SET_NAMES = {"churn": "sets-churn", "clv": "sets-clv"}


def log_models(estimators, evaluation, models: dict[str, str]) -> dict[str, str]:
    """Log and register ``{task: estimator key}`` in the active run; return the versions."""
    run_id = mlflow.active_run().info.run_id
    versions = {}
    for task, key in models.items():
        estimator = estimators[key]
        features = evaluation[task].drop(columns="label").astype("float64")
        tracking.log_evaluation_set(task, features.assign(label=evaluation[task]["label"]))
        version = log_estimator(
            estimator,
            task=task,
            registered_name=SET_NAMES[task],
            input_example=features,
            lineage=SETS,
            record=model_record(estimator, run_id, SETS),
        )
        versions[task] = str(version.version)
    return versions


def train_run(store, estimators, evaluation, models: dict[str, str]) -> tuple[str, dict[str, str]]:
    """One finished run registering several models, like `lifecycle train`."""
    client, _, _ = store
    with mlflow.start_run(experiment_id=experiment_id(client, "sets")) as run:
        tracking.log_lineage(SETS)
        versions = log_models(estimators, evaluation, models)
        mlflow.log_dict({}, tracking.SUMMARY_FILE)
    return run.info.run_id, versions


KILLED_TRAIN = """
import os
import signal
import sys

import joblib
import mlflow

from lifecycle.models.store import connect
from lifecycle.training import tracking

uri, folder = sys.argv[1], sys.argv[2]
estimator, example, evaluation, lineage = joblib.load(f"{folder}/killed.joblib")
client = connect(uri)
mlflow.start_run(experiment_id=tracking.experiment_id(client, "sets"))
tracking.log_process()
tracking.log_lineage(lineage)
tracking.log_evaluation_set("churn", evaluation)
tracking.log_estimator(
    estimator, task="churn", registered_name="sets-churn", input_example=example, lineage=lineage
)
os.kill(os.getpid(), signal.SIGKILL)  # killed before clv and summary.json
"""


def current_set(client) -> dict[str, tuple[str, str]]:
    loaded = load_champions(client, project="sets", names=SET_NAMES, tasks=["churn", "clv"])
    return {t: (m.version, m.run_id) for t, m in loaded.items()}


def test_promotion_moves_one_runs_models_together_and_never_a_killed_run(
    store, estimators, evaluation, tmp_path
):
    client, uri, _ = store
    run_a, va = train_run(
        store, estimators, evaluation, {"churn": "loadable", "clv": "loadable_clv"}
    )
    assert [p.status for p in promote(client, project="sets")] == ["first champion"] * 2
    assert current_set(client) == {t: (va[t], run_a) for t in ("churn", "clv")}

    # a `lifecycle train` killed with SIGKILL after registering its churn challenger
    features = evaluation["churn"].drop(columns="label").astype("float64")
    bundle = (estimators["loadable"], features, features.assign(label=evaluation["churn"]["label"]))
    joblib.dump((*bundle, SETS), tmp_path / "killed.joblib")
    killed_train = subprocess.run(  # a fresh process, as `lifecycle train` is
        [sys.executable, "-c", KILLED_TRAIN, uri, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed_train.returncode == -signal.SIGKILL, killed_train.stderr[-2000:]
    killed = client.get_model_version(SET_NAMES["churn"], aliases(client, "sets-churn")[CHALLENGER])
    assert killed.run_id != run_a
    assert client.get_run(killed.run_id).info.status == "RUNNING"

    for force in (False, True):
        [churn, clv] = promote(client, project="sets", force=force)
        assert (churn.status, churn.forceable, churn.run_id) == ("refused", False, killed.run_id)
        assert "not FINISHED" in churn.reason and "finished training runs" in churn.reason
        assert clv.status == "no challenger"
        assert current_set(client) == {t: (va[t], run_a) for t in ("churn", "clv")}
    run = client.get_run(killed.run_id)  # the next command ended it
    assert run.info.status == "FAILED"
    assert "was gone" in run.data.tags[tracking.ENDED_TAG]

    result = invoke(uri, "promote", "--project", "sets")
    assert result.exit_code == 1
    assert "nothing of that run moved" in result.stderr and "--force promotes" not in result.stderr


def test_a_refused_model_holds_back_its_run_mates(store, estimators, evaluation):
    client, uri, _ = store
    SET_NAMES_B = {"churn": "held-churn", "clv": "held-clv"}
    SET_NAMES.update(SET_NAMES_B)  # this test's own models (same project "sets" lineage)
    try:
        _, va = train_run(store, estimators, evaluation, {"churn": "good", "clv": "loadable_clv"})
        promote(client, list(SET_NAMES_B.values()), project="sets")
        run_b, vb = train_run(
            store, estimators, evaluation, {"churn": "bad", "clv": "loadable_clv"}
        )
        [churn, clv] = promote(client, list(SET_NAMES_B.values()), project="sets")
        assert churn.status == "refused" and churn.forceable
        assert clv.status == "refused" and clv.run_id == run_b
        assert clv.reason.startswith(f"held back with its run {run_b}: held-churn v{vb['churn']}")
        assert "it alone: mae" in clv.reason
        assert aliases(client, "held-clv") == {CHAMPION: va["clv"], CHALLENGER: vb["clv"]}
        assert aliases(client, "held-churn") == {CHAMPION: va["churn"], CHALLENGER: vb["churn"]}

        # naming one model of a run is refused too: its run-mate would stay behind
        result = invoke(uri, "promote", "--project", "sets", "--model", "held-clv", "--force")
        assert result.exit_code == 1
        assert "held-churn" in result.stderr and "was not named" in result.stderr
        assert aliases(client, "held-clv")[CHAMPION] == va["clv"]

        [churn, clv] = promote(client, list(SET_NAMES_B.values()), project="sets", force=True)
        assert (churn.status, clv.status) == ("forced", "forced")
        for name, task in (("held-churn", "churn"), ("held-clv", "clv")):
            assert aliases(client, name) == {CHAMPION: vb[task]}
            assert json.loads(client.get_registered_model(name).tags[HISTORY_TAG]) == [va[task]]
    finally:
        for task in SET_NAMES_B:
            SET_NAMES[task] = f"sets-{task}"


def test_rollback_goes_back_two_steps_with_every_model_together(store, estimators, evaluation):
    client, uri, _ = store
    SET_NAMES.update({"churn": "steps-churn", "clv": "steps-clv"})
    names = ["steps-churn", "steps-clv"]
    try:
        runs = []
        for _ in range(3):
            runs.append(
                train_run(
                    store, estimators, evaluation, {"churn": "loadable", "clv": "loadable_clv"}
                )
            )
            assert all(
                p.status in ("first champion", "promoted")
                for p in promote(client, names, project="sets")
            )
        (run_a, va), (_, vb), (_, vc) = runs
        assert json.loads(client.get_registered_model("steps-clv").tags[HISTORY_TAG]) == [
            va["clv"],
            vb["clv"],
        ]
        result = invoke(
            uri,
            "rollback",
            "--project",
            "sets",
            "--model",
            "steps-churn",
            "--model",
            "steps-clv",
            "--steps",
            "3",
        )
        assert result.exit_code == 2 and "not 3 to go back" in result.stderr

        result = invoke(
            uri,
            "rollback",
            "--project",
            "sets",
            "--model",
            "steps-churn",
            "--model",
            "steps-clv",
            "--steps",
            "2",
            "--json",
        )
        assert result.exit_code == 0, result.stderr
        moved = json.loads(result.stdout)["rollbacks"]
        assert [(r["from_version"], r["to_version"]) for r in moved] == [
            (vc["churn"], va["churn"]),
            (vc["clv"], va["clv"]),
        ]
        for name, task in (("steps-churn", "churn"), ("steps-clv", "clv")):
            assert aliases(client, name) == {CHAMPION: va[task]}
            assert json.loads(client.get_registered_model(name).tags[HISTORY_TAG]) == []
        loaded = load_champions(client, project="sets", names=SET_NAMES, tasks=["churn", "clv"])
        assert {m.run_id for m in loaded.values()} == {run_a}
    finally:
        SET_NAMES.update({"churn": "sets-churn", "clv": "sets-clv"})


def test_a_failed_alias_move_puts_the_models_moved_before_back(store, estimators, evaluation):
    client, _, _ = store
    SET_NAMES.update({"churn": "undo-churn", "clv": "undo-clv"})
    try:
        _, va = train_run(store, estimators, evaluation, {"churn": "good", "clv": "loadable_clv"})
        promote(client, ["undo-churn", "undo-clv"], project="sets")
        _, vb = train_run(store, estimators, evaluation, {"churn": "good", "clv": "loadable_clv"})
        moves = [
            tracking._Move("undo-churn", vb["churn"], [va["churn"]], drop_challenger=True),
            tracking._Move("undo-clv", "999", [va["clv"]], drop_challenger=True),  # no such version
        ]
        with pytest.raises(RegistryError, match="nothing moved"):
            tracking._apply_moves(client, moves)
        for name, task in (("undo-churn", "churn"), ("undo-clv", "clv")):
            assert aliases(client, name) == {CHAMPION: va[task], CHALLENGER: vb[task]}
            assert json.loads(client.get_registered_model(name).tags[HISTORY_TAG]) == []
    finally:
        SET_NAMES.update({"churn": "sets-churn", "clv": "sets-clv"})


def test_sigterm_during_a_run_ends_it_failed(store):
    import os
    import signal

    client, _, _ = store
    with pytest.raises(SystemExit) as stopped:
        with (
            tracking.failing_on_termination(),
            mlflow.start_run(experiment_id=experiment_id(client, "sets")) as run,
        ):
            os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
