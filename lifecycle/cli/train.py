"""The model commands: ``train``, ``evaluate`` and ``score``.

Each command checks its paths and its store first (before pandas, MLflow or LightGBM are
imported), then calls the ``training`` library (:func:`lifecycle.training.train.train_and_log`,
:func:`lifecycle.training.tracking.read_run_summary`,
:func:`lifecycle.training.train.score_customers`) and prints; see :mod:`lifecycle.cli.options` for
the shared options and exit codes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from lifecycle.cli.inputs import (
    check_events,
    check_out_file,
    check_store,
    cutoff_or_default,
    find_truth,
    load_training_config,
    open_events,
)
from lifecycle.cli.options import (
    EXIT_FAILED,
    EXIT_USAGE,
    AliasOpt,
    CutoffOpt,
    DatasetOpt,
    EventsOpt,
    JsonOpt,
    MappingOpt,
    ProjectOpt,
    TableOpt,
    TrackingUriOpt,
    TrainingConfigOpt,
    fail,
)
from lifecycle.cli.output import emit, note, print_rows, progress, warn

PROTOCOL_NAMES = {
    "time": "time-honest protocol",
    "customer": "customer-split protocol, not time-honest",
}
"""How each evaluation protocol is named in the tables (others by their own name)."""


def protocol_tables(block: Mapping[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Return every protocol a task was evaluated under: (protocol, eval cutoff, rows).

    The task's main protocol (``metrics``, as training chose: ``time`` or ``customer``) comes
    first, then every other protocol the run logged beside it (``customer_split``, and any
    later block of the same shape: rows of ``{"overall": {...}}`` plus ``cutoffs``). Each row
    is ``{"model": name, metric: value, ...}`` (read from the run's summary, no model loaded).

    Examples
    --------
    >>> block = {"protocol": "time", "cutoffs": {"eval": "2024-06-01T00:00:00+00:00"},
    ...          "metrics": {"model": {"overall": {"roc_auc": 0.8}}}}
    >>> protocol_tables(block)
    [('time', '2024-06-01', [{'model': 'model', 'roc_auc': 0.8}])]
    """
    found = [(str(block.get("protocol", "time")), block.get("metrics"), block.get("cutoffs"))]
    for key, value in block.items():
        if key == "metrics" or not isinstance(value, Mapping):
            continue
        cutoffs = value.get("cutoffs")
        if isinstance(cutoffs, Mapping) and "protocol" in cutoffs:
            found.append((str(cutoffs["protocol"]), value, cutoffs))
    tables = []
    for protocol, entries, cutoffs in found:
        if not isinstance(entries, Mapping):
            continue
        rows = [
            {"model": name, **entry["overall"]}
            for name, entry in entries.items()
            if isinstance(entry, Mapping) and isinstance(entry.get("overall"), Mapping)
        ]
        if rows:
            cut = cutoffs.get("eval", "") if isinstance(cutoffs, Mapping) else ""
            tables.append((protocol, str(cut)[:10], rows))
    return tables


def print_task_metrics(summary: Mapping[str, Any]) -> None:
    """Print each task's metrics under every protocol logged: the model and its baselines."""
    from lifecycle.models.tasks import spec

    for task, block in summary["tasks"].items():
        metrics = [*spec(task).console_metrics]
        registered = block.get("registered", {})
        version = (
            f", registered {registered['name']} v{registered['version']}" if registered else ""
        )
        for protocol, cut, rows in protocol_tables(block):
            name = PROTOCOL_NAMES.get(protocol, f"{protocol} protocol")
            customers = rows[0].get("n")
            count = f", {int(customers):,} customers" if isinstance(customers, int | float) else ""
            print_rows(
                rows,
                ["model", *(m for m in metrics if any(m in row for row in rows))],
                f"{task} ({block['horizon_days']} d, {name}, evaluated at {cut}{count}{version})",
                {m: ".4f" for m in metrics},
            )


def train(
    events: EventsOpt,
    config: TrainingConfigOpt = None,
    trials: Annotated[
        int | None, typer.Option(help="Optuna trials per model (overrides the config).", min=0)
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Optuna time budget per model in seconds (overrides the config)."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL shared by several workers (default: in memory)."),
    ] = None,
    tuning_max_rows: Annotated[
        int | None,
        typer.Option(
            help="Tune on a random sample of at most N training rows, then fit on all "
            "(overrides the config; default: every row).",
            min=1,
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (overrides the config).")] = None,
    experiment: Annotated[
        str | None, typer.Option(help="MLflow experiment name. Default: the project's name.")
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="Simulator truth.parquet for the oracle (default: beside --events, if there).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(help="Also keep the HTML report, plots and model cards in DIR/<run id>/."),
    ] = Path("reports"),
    mapping: MappingOpt = None,
    table: TableOpt = None,
    project: ProjectOpt = "lifecycle",
    dataset: DatasetOpt = None,
    tracking_uri: TrackingUriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train, calibrate, evaluate and register the next-stage, churn and CLV models.

    Builds features at every cutoff, labels from the window after each, tunes LightGBM with
    Optuna on a later cutoff, calibrates there, and reports on the last complete cutoff
    against RFM, last-period, BG/NBD (and, on simulated data, the oracle). Logs one MLflow run
    (params, metrics, plots, HTML report, model cards, data fingerprint) and registers
    lifecycle-next-stage, lifecycle-churn and lifecycle-clv (with --project P: P-next-stage ...)
    with the alias `challenger`, each tagged with its project, data set and feature config.
    """
    check_events(events)
    from lifecycle.training.labels import IncompleteLabelWindow
    from lifecycle.training.splits import SplitError
    from lifecycle.training.tracking import default_dataset, quiet_mlflow
    from lifecycle.training.train import train_and_log

    quiet_mlflow()

    cfg = load_training_config(
        config,
        **{
            "tuning.trials": trials,
            "tuning.timeout_seconds": timeout,
            "tuning.storage": storage,
            "tuning.max_rows": tuning_max_rows,
            "seed": seed,
        },
    )
    data, counts = open_events(events, mapping, table, cfg.lifecycle)
    truth_table = find_truth(events, truth) if mapping is None else None
    began = time.perf_counter()
    with progress("training", total=None, enabled=not as_json) as _advance:
        try:
            summary = train_and_log(
                data,
                config=cfg,
                truth=truth_table,
                tracking_uri=tracking_uri,
                experiment=experiment or project,
                report_dir=report_dir,
                progress=None if as_json else note,
                project=project,
                dataset=dataset or default_dataset(events, mapping),
                mapping=mapping,
            )
        except (SplitError, IncompleteLabelWindow) as exc:
            raise fail(str(exc), EXIT_USAGE) from exc
        except RuntimeError as exc:  # e.g. no Optuna trial finished within the time budget
            raise fail(str(exc), EXIT_FAILED) from exc
    seconds = time.perf_counter() - began
    skipped = summary["data"].get("skipped", {})
    if not as_json:
        print_task_metrics(summary)
        for task, why in skipped.items():
            warn(f"{task} was not trained: {why} (see `lifecycle check`)")
    registered = {
        block["registered"]["name"]: block["registered"]["version"]
        for block in summary["tasks"].values()
    }
    out = {
        "run_id": summary["run"]["run_id"],
        "experiment": experiment or project,
        "project": project,
        "dataset": summary["run"].get("dataset"),
        "registered": registered,
        "events": counts["events"],
        "rows_quarantined": counts["rows_quarantined"],
        "report": summary.get("report"),
        "skipped": skipped,
        "seconds": round(seconds, 1),
    }
    emit(
        out,
        f"run {out['run_id']}: registered "
        + ", ".join(f"{k} v{v}" for k, v in registered.items())
        + f" as challenger in {seconds:.0f} s"
        + (f"; report {out['report']}" if out["report"] else ""),
        as_json,
    )


def evaluate(
    run: Annotated[str, typer.Option("--run", help="MLflow run id of a training run.")],
    project: ProjectOpt = "lifecycle",
    tracking_uri: TrackingUriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a training run's evaluation: each model against its baselines, per task.

    One table per task and protocol the run logged (time-honest, and the customer split
    beside it when it was computed). Reads only the run's summary, so it answers in about a
    second. The run must belong to the project (runs logged before projects belong to
    lifecycle).
    """
    check_store(tracking_uri)
    from mlflow.exceptions import MlflowException

    from lifecycle.models.store import StoreError, open_store
    from lifecycle.training.tracking import quiet_mlflow, read_run_summary

    quiet_mlflow()
    try:
        summary = read_run_summary(open_store(tracking_uri), run)
    except (MlflowException, StoreError, OSError) as exc:
        raise fail(f"cannot read run {run}: {str(exc).splitlines()[0]}", EXIT_USAGE) from exc
    owner = summary.get("run", {}).get("project") or "lifecycle"
    if owner != project:
        raise fail(
            f"run {run} belongs to project {owner!r}, not {project!r}; pass --project {owner}",
            EXIT_USAGE,
        )
    if as_json:
        emit(summary, "", as_json)
        return
    print_task_metrics(summary)
    tasks = ", ".join(summary["tasks"])
    emit(summary, f"run {run}: {tasks}; report.html is in the run's artifacts", as_json)


def score(
    events: EventsOpt,
    out: Annotated[Path, typer.Option(help="Parquet file for the scores.")],
    cutoff: CutoffOpt = None,
    alias: AliasOpt = "champion",
    config: TrainingConfigOpt = None,
    mapping: MappingOpt = None,
    table: TableOpt = None,
    project: ProjectOpt = "lifecycle",
    tracking_uri: TrackingUriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score every customer at a cutoff with the project's champion models (batch scoring).

    Features are built with the lifecycle config each model was trained with (the record
    its registered version carries) unless --config is given; tasks without a champion are
    left out.

    Writes one row per customer: stage, status, RFM scores and segment, next-stage
    probability, churn risk, CLV with P10-P90, the model versions that made them, and every
    feature (the file is the prediction service's customer lookup table).
    """
    check_events(events)
    check_out_file(out)
    check_store(tracking_uri)
    import mlflow

    from lifecycle.features.config import LifecycleConfig
    from lifecycle.training.tracking import quiet_mlflow
    from lifecycle.training.train import score_customers

    quiet_mlflow()
    cfg = load_training_config(config) if config else None
    data, counts = open_events(events, mapping, table, cfg.lifecycle if cfg else LifecycleConfig())
    cut = cutoff_or_default(data, cutoff)
    began = time.perf_counter()
    try:
        scores = score_customers(
            data, cutoff=cut, config=cfg, tracking_uri=tracking_uri, alias=alias, project=project
        )
    except LookupError as exc:
        raise fail(
            f"{exc}; train and promote first (`lifecycle train`, `lifecycle promote`)",
            EXIT_USAGE,
        ) from exc
    except mlflow.exceptions.MlflowException as exc:
        raise fail(str(exc).splitlines()[0], EXIT_USAGE) from exc
    except ValueError as exc:  # a cutoff before any event
        raise fail(str(exc), EXIT_USAGE) from exc
    from lifecycle.features.io import replace_atomically

    out.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(out, lambda temp: scores.to_parquet(temp, index=False))
    seconds = time.perf_counter() - began
    summary = {
        "customers": len(scores),
        "cutoff": cut.isoformat(),
        "model_versions": json.loads(scores["model_versions"].iloc[0]) if len(scores) else {},
        "events": counts["events"],
        "seconds": round(seconds, 2),
        "out": str(out),
    }
    emit(
        summary,
        f"scored {len(scores):,} customers as of {cut.date()} with "
        + ", ".join(f"{k} v{v}" for k, v in summary["model_versions"].items())
        + f" in {seconds:.1f} s -> {out}",
        as_json,
    )
