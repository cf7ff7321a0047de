"""One training run end to end: train and evaluate, write plots and reports, log to MLflow.

The wiring of :mod:`lifecycle.training.pipeline` (pure work), :mod:`lifecycle.training.report`
(files) and
:mod:`lifecycle.training.tracking` (MLflow), used by ``lifecycle train`` and by notebooks.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifecycle.features.build import typical_values, typical_values_by_stage
from lifecycle.features.config import LifecycleConfig
from lifecycle.features.io import replace_folder_atomically
from lifecycle.models import store
from lifecycle.models.store import ModelRecord
from lifecycle.models.tasks import Task, spec
from lifecycle.training import report, tracking
from lifecycle.training.config import TrainingConfig
from lifecycle.training.pipeline import Progress, TaskResult, TrainingResult, run_training

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SUMMARY_FILE = tracking.SUMMARY_FILE
REPORT_FILE = "report.html"


SCORE_KEYS = ("customer_id", "cutoff", "stage", "label")
"""Columns of a task's logged evaluation scores besides the ``score_*`` columns."""


def evaluation_scores(result: TaskResult) -> pd.DataFrame:
    """One task's evaluation rows without features: keys, stage, label and every score.

    ``score_model`` is the model, ``score_model_uncalibrated`` its raw probability (classifiers),
    ``score_model_clv_p10``/``_p90`` its interval (CLV), and ``score_<baseline>`` each baseline
    (``rfm``, ``last_period``, ``bgnbd``; ``oracle`` on simulated data).
    """
    frame = result.evaluation
    keys = [c for c in SCORE_KEYS if c in frame.columns]
    scores = [c for c in frame.columns if c.startswith("score_")]
    return frame[[*keys, *scores]].reset_index(drop=True)


def evaluation_figures(task: Task, scores: pd.DataFrame) -> dict[str, Figure]:
    """Draw a task's evaluation: calibration (classifiers) or deciles (CLV), and cumulative gain.

    Parameters
    ----------
    task
        ``next_stage``, ``churn`` or ``clv``.
    scores
        :func:`evaluation_scores` of the task, or :func:`load_evaluation_scores` of a run.

    Returns
    -------
    dict
        ``calibration`` or ``deciles``, and ``gain``: the model against every baseline.
    """
    y = scores["label"].to_numpy(dtype=float)
    ranked = {
        name.removeprefix("score_"): scores[name].to_numpy(dtype=float)
        for name in scores.columns
        if name.startswith("score_") and not name.startswith("score_model_")
    }
    title = task.replace("_", " ")
    figures: dict[str, Figure] = {}
    if spec(task).kind == "regression":
        figures["deciles"] = report.deciles_figure(y, ranked["model"], title=f"{title}: deciles")
    else:
        figures["calibration"] = report.calibration_figure(
            y,
            {
                "uncalibrated": scores["score_model_uncalibrated"].to_numpy(dtype=float),
                "calibrated": ranked["model"],
            },
            title=f"{title}: calibration on the evaluation cutoff",
        )
    finite = {k: v for k, v in ranked.items() if np.isfinite(v).all()}
    figures["gain"] = report.gain_figure(
        np.maximum(y, 0.0), finite, title=f"{title}: cumulative gain"
    )
    return figures


def write_plots(result: TaskResult, folder: Path) -> dict[str, Path]:
    """Write one task's plots as PNG files into ``folder``; return name -> path."""
    task = result.task
    figures = evaluation_figures(task, evaluation_scores(result))
    title = task.replace("_", " ")
    figures["shap"] = report.shap_summary_figure(
        result.contributions,
        result.shap_rows[result.estimator.feature_names],
        title=f"{title}: SHAP summary",
    )
    figures["importance"] = report.importance_figure(
        result.estimator.importance(), title=f"{title}: gain"
    )
    return {
        name: report.save_png(figure, folder / f"{task}_{name}.png")
        for name, figure in figures.items()
    }


def _metric_items(summary: dict[str, Any]) -> dict[str, Any]:
    """Metrics to log: every row's overall numbers, the model's per stage, calibration."""
    out: dict[str, Any] = {}
    for task, block in summary["tasks"].items():
        for row, values in block["metrics"].items():
            out[f"{task}.{row}"] = values["overall"]
        for stage, values in block["metrics"]["model"].get("by_stage", {}).items():
            out[f"{task}.model.stage.{stage}"] = values
        if "calibration" in block:
            out[f"{task}.calibration"] = {
                k: v for k, v in block["calibration"].items() if k != "method"
            }
        for row, values in block.get("customer_split", {}).items():
            if row != "cutoffs":
                out[f"{task}.customer_split.{row}"] = values["overall"]
    return out


def _params(config: TrainingConfig, result: TrainingResult) -> dict[str, Any]:
    params: dict[str, Any] = {
        "protocol": config.protocol,
        "seed": config.seed,
        "threads": config.threads,
        "tasks": ",".join(result.tasks),  # the trained ones; data.skipped.* says why not others
        "horizons": config.horizons.model_dump(),
        "tuning": config.tuning.model_dump(exclude={"storage"}),
        "calibration": config.calibration,
        "max_train_cutoffs": config.max_train_cutoffs,
        "learner": result.data.get("learner", config.learner),
    }
    if result.btyd:
        latest = max(result.btyd)
        params["btyd"] = {"cutoff": latest, **result.btyd[latest]}
    for task, res in result.tasks.items():
        params[f"{task}.params"] = res.tuning.best_params
        params[f"{task}.eval_cutoff"] = res.split.eval.isoformat()
        params[f"{task}.valid_cutoff"] = res.split.valid.isoformat()
    return params


def model_record(
    result: TaskResult,
    summary: dict[str, Any],
    config: TrainingConfig,
    lineage: store.Lineage | None = None,
) -> ModelRecord:
    """Return what serving needs from this run for one task's registered version.

    The lifecycle config the features were built with, the split, the headline metrics
    (:attr:`lifecycle.models.tasks.TaskSpec.headline_metrics`) and the typical feature values of the
    evaluation population; logged in the version's MLmodel metadata (see
    :mod:`lifecycle.models.store`), with the run's project, data set and feature configuration
    (``lineage``; default: project ``lifecycle``, data set unknown).
    """
    task = result.task
    overall = summary["tasks"][task]["metrics"]["model"]["overall"]
    names = result.estimator.feature_names
    lineage = lineage or store.Lineage(feature_config=store.feature_config_id(config.lifecycle))
    return ModelRecord(
        task=task,
        run_id=str(summary["run"]["run_id"]),
        lifecycle=config.lifecycle,
        feature_names=tuple(names),
        horizon_days=result.split.horizon_days,
        protocol=result.split.protocol,
        trained_on=tuple(c.isoformat() for c in result.split.train),
        validated_on=result.split.valid.isoformat(),
        evaluated_on=result.split.eval.isoformat(),
        metrics={
            k: float(overall[k])
            for k in spec(task).headline_metrics
            if isinstance(overall.get(k), float)
        },
        typical=typical_values(result.evaluation, names),
        typical_by_stage=typical_values_by_stage(result.evaluation, names),
        project=lineage.project,
        dataset=lineage.dataset,
        feature_config=lineage.feature_config,
        data_fingerprint=lineage.data_fingerprint,
    )


def evaluation_set(result: TaskResult) -> pd.DataFrame:
    """Rows promote re-scores a challenger and a champion on: keys, features and the label."""
    cols = [c for c in result.evaluation.columns if not c.startswith("score_") and c != "label"]
    # the features keep the builder's dtypes: the registered signature declares counts long
    return result.evaluation[[*cols, "label"]].reset_index(drop=True)


def train_and_log(
    events: Any,
    *,
    config: TrainingConfig | None = None,
    truth: pd.DataFrame | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    report_dir: str | Path | None = None,
    progress: Progress | None = None,
    project: str = store.DEFAULT_PROJECT,
    dataset: str | None = None,
    mapping: str | None = None,
) -> dict[str, Any]:
    """Train, evaluate and register every model; return the run's summary.

    Parameters
    ----------
    events
        Canonical events (Parquet path or frame).
    config
        Training config (defaults suit the simulator).
    truth
        The simulator's truth table, for the oracle.
    tracking_uri
        MLflow tracking URI; default ``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` here.
    experiment
        MLflow experiment name; default: the project's name.
    report_dir
        Where to also keep a copy of the HTML report, plots and model cards
        (``<report_dir>/<run_id>/``); None keeps them only in MLflow.
    progress
        Called with a message at each step.
    project
        Project whose names the models are registered under
        (:func:`lifecycle.models.store.registered_names`).
    dataset
        Name of the data set (recorded with the run and every version, compared by
        ``promote``); default: :func:`lifecycle.training.tracking.default_dataset` of
        ``events`` and ``mapping``.
    mapping
        Name of the column mapping the events were read with, recorded with the run.

    Returns
    -------
    dict
        The summary (``run``, ``data``, ``tasks`` with metrics and registered versions).
    """
    import mlflow

    config = config or TrainingConfig()
    names = store.registered_names(project)  # a bad project name fails before training
    experiment = experiment or project
    say = progress or (lambda _message: None)
    result = run_training(events, config=config, truth=truth, progress=say)
    lineage = store.Lineage(
        project=project,
        dataset=dataset or tracking.default_dataset(events, mapping),
        feature_config=store.feature_config_id(config.lifecycle),
        data_fingerprint=result.data.get("fingerprint"),
        mapping=mapping,
    )
    say("logging to MLflow")
    client = store.connect(tracking_uri)
    exp_id = tracking.experiment_id(client, experiment)
    latest = max((r.split.eval for r in result.tasks.values()), default=None)
    name = tracking.run_name(
        "train",
        lineage.dataset,
        str(result.data.get("learner", config.learner)),
        f"eval-{latest.date()}" if latest is not None else "",
    )
    # kill -9 cannot be caught: end earlier runs of this host whose process is gone
    tracking.fail_abandoned_runs(client, [exp_id])
    with (
        tracking.failing_on_termination(),  # SIGTERM and Ctrl-C end the run FAILED
        mlflow.start_run(experiment_id=exp_id, run_name=name) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        tracking.log_process()
        folder = Path(tmp)
        git = tracking.log_git_commit(Path(__file__).resolve().parents[1])
        dirty = " (uncommitted changes)" if git["git_dirty"] == "true" else ""
        run_info = {
            "run_id": run.info.run_id,
            "run_name": name,
            "experiment": experiment,
            "project": project,
            "dataset": lineage.dataset,
            "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "git_commit": git["git_commit"][:12] + dirty,
        }
        tracking.log_config(config.model_dump(mode="json"))
        tracking.log_lineage(lineage)
        tracking.log_data_fingerprint(result.data)
        tracking.log_event_log_input(result.data, dataset=lineage.dataset)
        tracking.log_params(_params(config, result))
        if result.btyd:  # the hybrid's BTYD model at every cutoff (the models keep the last)
            mlflow.log_dict(result.btyd, "btyd_fits.json")
        mlflow.log_dict(result.readiness, "readiness.json")
        images: dict[str, Path] = {}
        for task, res in result.tasks.items():
            for name, path in write_plots(res, folder / "plots").items():
                images[f"{task}_{name}"] = path
            if len(res.tuning.trials):
                tracking.log_table(res.tuning.trials, f"tuning/{task}_trials.json")
            tracking.log_evaluation_set(task, evaluation_set(res))
            tracking.log_table(evaluation_scores(res), scores_artifact(task))
        summary = result.summary(run_info)
        tracking.log_metrics(_metric_items(summary))
        for task, res in result.tasks.items():
            version = tracking.log_estimator(
                res.estimator,
                task=task,
                registered_name=names[task],
                input_example=res.evaluation.head(5),
                record=model_record(res, summary, config, lineage),
                tags={
                    "eval_cutoff": res.split.eval.isoformat(),
                    "horizon_days": str(res.split.horizon_days),
                    "protocol": res.split.protocol,
                },
            )
            summary["tasks"][task]["registered"] = {
                "name": version.name,
                "version": str(version.version),
            }
            card = report.render_model_card(summary, task)
            (folder / "model_cards").mkdir(exist_ok=True)
            (folder / "model_cards" / f"{task}.md").write_text(card, encoding="utf-8")
            client.update_model_version(version.name, version.version, description=card)
        report.render_html_report(summary, images, folder / REPORT_FILE)
        (folder / SUMMARY_FILE).write_text(
            json.dumps(summary, indent=2, default=_json_default), encoding="utf-8"
        )
        tracking.log_files(folder, "")
        if report_dir is not None:
            target = replace_folder_atomically(
                Path(report_dir) / run.info.run_id,
                lambda temp: shutil.copytree(folder, temp, dirs_exist_ok=True),
            )
            summary["report"] = str(target / REPORT_FILE)
    summary["seconds"] = round(result.seconds, 1)
    return summary


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def scores_artifact(task: str) -> str:
    """Return the run-relative path of a task's evaluation scores."""
    return f"evaluation/{task}_scores.parquet"


def load_evaluation_scores(
    run_id: str, task: Task, tracking_uri: str | None = None
) -> pd.DataFrame:
    """Read a training run's evaluation scores of one task back from MLflow.

    The rows of :func:`evaluation_scores`: keys, label, the model's scores and every
    baseline's, for :func:`evaluation_figures` or metrics of your own.

    Raises
    ------
    LookupError
        When the run has no scores for ``task`` (runs logged before they were kept, or a
        task the run did not train).
    """
    import mlflow

    store.connect(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=scores_artifact(task), dst_path=tmp
            )
        except mlflow.exceptions.MlflowException as exc:
            raise LookupError(
                f"run {run_id} has no {scores_artifact(task)} ({str(exc).splitlines()[0]})"
            ) from exc
        return pd.read_parquet(path)


def load_run_summary(run_id: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Read a training run's summary back from MLflow (:func:`tracking.read_run_summary`)."""
    return tracking.read_run_summary(store.open_store(tracking_uri), run_id)


def score_customers(
    events: Any,
    *,
    cutoff: pd.Timestamp,
    config: TrainingConfig | None = None,
    tracking_uri: str | None = None,
    alias: str = "champion",
    tasks: tuple[Task, ...] | None = None,
    project: str = store.DEFAULT_PROJECT,
) -> pd.DataFrame:
    """Score every customer at a cutoff with the project's registered models holding ``alias``.

    Parameters
    ----------
    events
        Canonical events.
    cutoff
        Score as of this time (events strictly before it).
    config
        Lifecycle config for the features; default: the one each model's training run
        logged, so features are built exactly as the model was trained.
    tracking_uri
        MLflow tracking URI (default as for training).
    alias
        Registry alias of the versions to use.
    tasks
        Tasks to score; default: every task with a version holding ``alias``.
    project
        Project whose models score (:func:`lifecycle.models.store.registered_names`).

    Returns
    -------
    pandas.DataFrame
        One row per customer: keys, every feature (the models' inputs, which the prediction
        service loads as its customer lookup table), stage, status, RFM scores and segment,
        ``segment_churn_rate_90d`` (the segment's observed churn over the 90 days before
        ``cutoff``, :func:`lifecycle.features.rfm.segment_churn_rates`; NaN for "No purchase
        yet" or a log shorter than the window), every prediction, and ``model_versions``
        (JSON: registered name -> version) naming what made them.

    Raises
    ------
    LookupError
        When no model (or a task asked for) has a version with ``alias``.
    ValueError
        When ``cutoff`` is not after the first event: no customer has a history to score.
    """
    from lifecycle.features.build import build_features, event_time_range, feature_columns
    from lifecycle.features.rfm import (
        OBSERVED_CHURN_COLUMN,
        OBSERVED_CHURN_DAYS,
        segment_churn_rates,
    )
    from lifecycle.models.lgbm import matrix
    from lifecycle.models.scoring import eligibility, place, predict_outputs
    from lifecycle.models.store import LoadedModel, StoreError, load_champions

    first, _ = event_time_range(events)
    if cutoff <= first:
        raise ValueError(
            f"the cutoff {cutoff.isoformat()} is not after the first event "
            f"({first.isoformat()}): no customer has a history yet, so there is nothing to score"
        )
    client = store.connect(tracking_uri)
    try:
        found = load_champions(
            client, alias=alias, project=project, tasks=tasks, required=bool(tasks)
        )
    except StoreError as exc:
        raise LookupError(str(exc)) from exc
    if not found:
        raise LookupError(f"no model of project {project} has a version with the alias {alias!r}")
    # Models of different runs may have been trained with different lifecycle configs: score
    # each with features built as it was trained.
    groups: dict[str, dict[Task, LoadedModel]] = {}
    for task, model in found.items():
        lifecycle = config.lifecycle if config is not None else model.record.lifecycle
        groups.setdefault(lifecycle.model_dump_json(), {})[task] = model
    out: pd.DataFrame | None = None
    versions: dict[str, str] = {}
    for key, models in groups.items():
        lifecycle = LifecycleConfig.model_validate_json(key)
        features = build_features(events, cutoffs=[cutoff], config=lifecycle)
        if out is None:
            out = features.copy()
        names = feature_columns(lifecycle)
        x = matrix(features, names)
        scorers = place({task: m.estimator for task, m in models.items()}, names)
        outputs = predict_outputs(scorers, x, eligibility(x, names, list(models)))
        position = pd.Index(features["customer_id"]).get_indexer(out["customer_id"])
        for column, values in outputs.items():
            out[column] = values[position]
        versions.update({m.name: m.version for m in models.values()})
    if out is None:  # unreachable: `found` is not empty
        raise LookupError("no model to score with")
    # Beside each row's segment, what that segment has meant on this log lately: the share of
    # its customers 90 days ago who bought nothing since (NaN where not known). The segments
    # in `out` are those of the first config, so the rates are too.
    rates = segment_churn_rates(
        events,
        cutoff=cutoff,
        horizon_days=OBSERVED_CHURN_DAYS,
        config=LifecycleConfig.model_validate_json(next(iter(groups))),
    ).set_index("segment")["churn_rate"]
    out[OBSERVED_CHURN_COLUMN] = out["rfm_segment"].map(rates).astype("float64")
    out["model_versions"] = json.dumps(versions, sort_keys=True)
    return out
