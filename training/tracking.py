"""MLflow tracking for lifecycle training: where runs go, small ``log_*`` functions, registry moves.

Runs go to ``$MLFLOW_TRACKING_URI`` or, by default, to ``sqlite:///<cwd>/mlflow.db`` with
artifacts in ``<cwd>/mlartifacts``, so ``mlflow ui --backend-store-uri sqlite:///mlflow.db`` run
in that folder shows runs and artifacts. :func:`connect` makes a SQLite store safe for several
training processes at once. The ``log_*`` functions log into the active run
(``mlflow.start_run(experiment_id=...)``). Each trained estimator is registered under its
project's names (:func:`lifecycle.models.store.registered_names`) with the alias
``challenger``, the run and the version tagged with their
:class:`~lifecycle.models.store.Lineage` (:func:`log_lineage`); :func:`promote` moves
``champion`` to it when it is at least as good as the champion on the challenger's evaluation
set and comes from the same project, data set and feature configuration (only versions of
finished runs, the models of one run together), and :func:`rollback` moves ``champion`` back
one or more promotions. A run killed mid-way ends FAILED (:func:`failing_on_termination`,
:func:`fail_abandoned_runs`). Nothing happens on import.

Examples
--------
>>> import mlflow
>>> client = connect("sqlite:///mlflow.db")  # doctest: +SKIP
>>> with mlflow.start_run(experiment_id=experiment_id(client, "lifecycle")):  # doctest: +SKIP
...     log_params({"churn": {"num_leaves": 31}})
...     log_metrics({"churn": {"roc_auc": 0.81}})
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version as package_version
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lifecycle.models.store import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_PROJECT,
    Lineage,
    ModelRecord,
    alias_version,
    artifact_root_for,
    check_dataset,
    record_metadata,
    registered_names,
)
from lifecycle.models.tasks import SPECS, PrimaryMetric, spec, task_of_model

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from lifecycle.models.lgbm import LifecycleEstimator

HISTORY_TAG = "champion_history"
"""Registered-model tag: JSON list of earlier champion versions, oldest first."""

HISTORY_LIMIT = 20
"""Earlier champions kept per model (the oldest are dropped): how far ``rollback`` can go."""

MAX_PARAM_LENGTH = 6000
"""MLflow's limit on a parameter value (``mlflow.utils.validation.MAX_PARAM_VAL_LENGTH``)."""

INPUT_EXAMPLE_ROWS = 5
REQUIREMENTS = (
    "mlflow",
    "lightgbm",
    "scikit-learn",
    "scipy",  # the isotonic calibrator pickles a scipy interpolator
    "pandas",
    "numpy",
    "joblib",
    "cloudpickle",  # the pyfunc wrapper is pickled with it
)
"""Packages a logged model pins to the versions installed at training time."""


PromotionStatus = Literal["promoted", "refused", "forced", "first champion", "no challenger"]


class RegistryError(RuntimeError):
    """A registry move cannot be done (no such model, no history, no evaluation set)."""


class LineageError(RegistryError):
    """A registry move would cross projects, data sets or feature configurations."""


# --- where runs go -------------------------------------------------------------------------


def quiet_mlflow() -> None:
    """Keep MLflow's INFO and WARNING lines and artifact progress bars out of a command's output.

    For the CLI only (it changes a logger level and an environment default of this process).
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)


def experiment_id(client: MlflowClient, name: str) -> str:
    """Return the id of the experiment ``name``, creating it if needed (safe to race).

    A new experiment keeps its artifacts under :func:`artifact_root_for` (in a folder named
    after the experiment); a deleted one is restored.

    Parameters
    ----------
    client
        Client from :func:`connect`.
    name
        Experiment name.

    Returns
    -------
    str
        The experiment id.
    """
    existing = client.get_experiment_by_name(name)
    if existing is None:
        root = artifact_root_for(client.tracking_uri)
        folder = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "experiment"
        location = f"{root}/{folder}" if root else None
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except MlflowException as exc:
            # Another process created it between the look-up and the insert.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise RuntimeError(f"experiment {name!r} exists but cannot be read")
    if existing.lifecycle_stage == "deleted":
        client.restore_experiment(existing.experiment_id)
    return str(existing.experiment_id)


# --- runs that end: killed training runs end FAILED, never RUNNING for ever --------------------

PID_TAG = "lifecycle.pid"
HOST_TAG = "lifecycle.host"
PROCESS_START_TAG = "lifecycle.process_start"
ENDED_TAG = "lifecycle.ended"
"""Run tags naming the process that trains a run, and why a run was ended by another process."""


def _process_start(pid: int) -> str | None:
    """Return a process's start time in clock ticks after boot (Linux ``/proc``), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count fields after the last ")"
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def log_process() -> dict[str, str]:
    """Tag the active run with the process training it (pid, host, process start time).

    :func:`fail_abandoned_runs` reads these tags to end, as FAILED, a run whose process was
    killed with ``kill -9`` (which no handler can catch).

    Returns
    -------
    dict
        The tags set, e.g. ``{"lifecycle.pid": "4242", "lifecycle.host": "build-1", ...}``.
    """
    import socket

    pid = os.getpid()
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    start = _process_start(pid)
    if start is not None:
        tags[PROCESS_START_TAG] = start
    mlflow.set_tags(tags)
    return tags


def _process_gone(tags: Mapping[str, str]) -> bool:
    """Say whether the process named by a run's tags is gone (only for this host's runs)."""
    import socket

    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False  # another host's process (or an untagged run) cannot be checked from here
    pid = int(tags[PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    recorded = tags.get(PROCESS_START_TAG)
    # the pid may have been reused by a later process: its start time tells them apart
    return recorded is not None and _process_start(pid) not in (None, recorded)


def fail_abandoned_runs(client: MlflowClient, experiment_ids: Sequence[str]) -> list[str]:
    """End as FAILED the RUNNING runs whose training process on this host is gone.

    A run is checked only when it carries :func:`log_process`'s tags and was started on this
    host; a run of another host, or one logged without the tags, is left as it is (and
    :func:`promote` refuses its versions all the same, since it never finished).

    Parameters
    ----------
    client
        Client of the store.
    experiment_ids
        Experiments to look in.

    Returns
    -------
    list of str
        The ids of the runs ended.

    Examples
    --------
    >>> fail_abandoned_runs(client, [experiment_id(client, "lifecycle")])  # doctest: +SKIP
    ['3f1c...']
    """
    ids = sorted({str(e) for e in experiment_ids if e})
    if not ids:
        return []
    ended: list[str] = []
    runs = client.search_runs(ids, filter_string="attributes.status = 'RUNNING'", max_results=1000)
    for run in runs:
        if not _process_gone(run.data.tags):
            continue
        client.set_tag(
            run.info.run_id,
            ENDED_TAG,
            f"process {run.data.tags[PID_TAG]} on {run.data.tags[HOST_TAG]} was gone; "
            "ended FAILED by a later lifecycle command",
        )
        client.set_terminated(run.info.run_id, "FAILED")
        ended.append(run.info.run_id)
    return ended


@contextmanager
def failing_on_termination() -> Iterator[None]:
    """Turn SIGTERM into an exception inside the block, so an active run ends FAILED.

    ``mlflow.start_run``'s context manager ends its run FAILED on any exception (Ctrl-C is a
    ``KeyboardInterrupt`` already); SIGTERM's default action would end the process with the
    run left RUNNING. Outside the main thread (where no handler can be set) nothing changes.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- logging into the active run -------------------------------------------------------------


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into one level with dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return JSON-able plain data (paths, dates and numpy numbers become strings or numbers)."""
    return json.loads(json.dumps(dict(values), default=_json_default))


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    return str(value)


def log_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Log parameters into the active run, nested mappings flattened with dotted keys.

    Values are stringified and cut to MLflow's limit of 6,000 characters; MLflow sends
    them in batches.

    Parameters
    ----------
    params
        Possibly nested parameters, e.g. ``{"churn": {"num_leaves": 31}}``.

    Returns
    -------
    dict
        What was logged, e.g. ``{"churn.num_leaves": "31"}``.
    """
    logged = {key: str(value)[:MAX_PARAM_LENGTH] for key, value in _flatten(params).items()}
    if logged:
        mlflow.log_params(logged)
    return logged


def log_metrics(metrics: Mapping[str, Any], *, step: int | None = None) -> dict[str, float]:
    """Log metrics into the active run, nested mappings flattened with dotted keys.

    None, NaN and infinite values are skipped (MLflow charts cannot show them); anything
    else that is not a number is an error.

    Parameters
    ----------
    metrics
        Possibly nested metrics, e.g. ``{"churn": {"test": {"roc_auc": 0.81}}}``.
    step
        Optional step (e.g. the cutoff index).

    Returns
    -------
    dict
        What was logged, e.g. ``{"churn.test.roc_auc": 0.81}``.
    """
    logged: dict[str, float] = {}
    for key, value in _flatten(metrics).items():
        if value is None:
            continue
        if not isinstance(value, Real):
            raise TypeError(f"metric {key!r} is not a number: {value!r}")
        if math.isfinite(float(value)):
            logged[key] = float(value)
    if logged:
        mlflow.log_metrics(logged, step=step)
    return logged


def log_config(config: Mapping[str, Any], name: str = "config.yaml") -> None:
    """Log a configuration as a YAML (or JSON, by the name's suffix) artifact of the run.

    Parameters
    ----------
    config
        Plain mapping, e.g. a pydantic model's ``model_dump(mode="json")``.
    name
        Artifact file name.
    """
    mlflow.log_dict(_plain(config), name)


def log_data_fingerprint(fingerprint: Mapping[str, Any]) -> None:
    """Log what the model was trained on: as ``data.*`` params and ``data_fingerprint.json``.

    Parameters
    ----------
    fingerprint
        E.g. the events file's hash, row counts and cutoffs.
    """
    log_params({"data": fingerprint})
    mlflow.log_dict(_plain(fingerprint), "data_fingerprint.json")


def default_dataset(events: object, mapping: str | None = None) -> str | None:
    """Return a data set name for an event source: the mapping's, else the file's or folder's.

    A shipped mapping's name (``cdnow``) or a mapping file's stem names a raw log; canonical
    events are named by their file's stem, or by their folder when the file is called
    ``events`` (the simulator's ``data/sim/events.parquet`` is ``sim``). A frame has no name
    (None). Give ``--dataset`` to choose one.

    Examples
    --------
    >>> default_dataset("data/sim/events.parquet")
    'sim'
    >>> default_dataset("exports/orders.csv", "cdnow")
    'cdnow'
    """
    raw: str | None = None
    if mapping:
        raw = Path(mapping).stem if mapping.endswith((".yaml", ".yml")) else mapping
    elif isinstance(events, str | Path) and "://" not in str(events):
        path = Path(events)
        raw = path.parent.name if path.stem == "events" and path.suffix else path.stem
    if not raw:
        return None
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-._")[:100]
    return check_dataset(name) if name else None


def log_lineage(lineage: Lineage) -> dict[str, str]:
    """Tag the active run with where its models come from (project, data set, features).

    Parameters
    ----------
    lineage
        The run's :class:`~lifecycle.models.store.Lineage`.

    Returns
    -------
    dict
        The tags set, e.g. ``{"lifecycle.project": "retail", "lifecycle.dataset": "cdnow"}``.
    """
    tags = lineage.tags()
    mlflow.set_tags(tags)
    return tags


def run_name(kind: str, dataset: str | None, *details: str) -> str:
    """Return a run name that says what ran on which data, instead of MLflow's random words.

    Examples
    --------
    >>> run_name("train", "cdnow", "hybrid", "eval-1998-04-01")
    'train-cdnow-hybrid-eval-1998-04-01'
    >>> run_name("uplift", None)
    'uplift-unnamed-data'
    """
    return "-".join([kind, dataset or "unnamed-data", *(d for d in details if d)])


def log_event_log_input(
    data: Mapping[str, Any], *, dataset: str | None, context: str = "training"
) -> None:
    """Log the event log as an MLflow dataset input of the active run (metadata only).

    The dataset's source is the log's path, its digest the first 16 hex digits of the
    content fingerprint (MLflow keeps digests short), and the input's tags hold the whole
    fingerprint, the row and customer counts and the period, so the run's Inputs panel
    says exactly which bytes were read.

    Parameters
    ----------
    data
        :func:`lifecycle.training.pipeline.fingerprint` of the log (``fingerprint``,
        ``source``, ``rows``, ``customers``, ``period_start``, ``period_end``).
    dataset
        The data set's name (:func:`default_dataset`); None names it by its source.
    context
        ``training`` (the log the run trained and evaluated on) or another MLflow context.
    """
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import (  # type: ignore[attr-defined]  # registered at import
        LocalArtifactDatasetSource,
    )

    where = str(data.get("source") or "")
    source: Any = (
        LocalArtifactDatasetSource(str(Path(where).resolve()))
        if where and Path(where).exists()
        else CodeDatasetSource(tags={"source": where or "in-memory frame"})
    )
    fingerprint = str(data.get("fingerprint") or "")
    digest = fingerprint.removeprefix("sha256:")[:16] or None
    name = dataset or Path(where).stem or "events"
    frame = MetaDataset(source, name=name, digest=digest)  # type: ignore[abstract]  # profile
    tags = {
        "fingerprint": fingerprint,
        **{
            k: str(data[k])
            for k in ("rows", "customers", "period_start", "period_end")
            if k in data
        },
    }
    mlflow.log_input(frame, context=context, tags=tags)


def _git(folder: Path, *args: str) -> str | None:
    """Run git in ``folder`` and return its output, or None when it fails."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def log_git_commit(repo_dir: str | Path | None = None) -> dict[str, str]:
    """Tag the active run with ``git_commit`` and ``git_dirty`` of a checkout.

    Both are ``unknown`` when the folder is not a git checkout or git is missing.
    ``git_dirty`` is ``true`` when tracked files changed or untracked files exist.

    Parameters
    ----------
    repo_dir
        Folder inside the checkout (default: the current folder).

    Returns
    -------
    dict
        The two tags.
    """
    folder = Path(repo_dir) if repo_dir is not None else Path.cwd()
    commit, dirty = "unknown", "unknown"
    head = _git(folder, "rev-parse", "HEAD")
    if head is not None:
        commit = head.strip()
        status = _git(folder, "status", "--porcelain")
        if status is not None:
            dirty = "true" if status.strip() else "false"
    tags = {"git_commit": commit, "git_dirty": dirty}
    mlflow.set_tags(tags)
    return tags


def _log_file(artifact_file: str, write: Callable[[Path], object]) -> None:
    """Write one file with ``write`` into a temporary folder and log it as ``artifact_file``."""
    target = Path(artifact_file)
    folder = target.parent.as_posix()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / target.name
        write(path)
        mlflow.log_artifact(str(path), artifact_path=None if folder == "." else folder)


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log a table (e.g. all Optuna trials of a task) as one artifact of the run.

    ``.json`` goes through ``mlflow.log_table`` (shown in the UI's artifact view; dates and
    durations become text), ``.csv`` and ``.parquet`` are written as they are.

    Parameters
    ----------
    frame
        The table.
    artifact_file
        Run-relative path, e.g. ``tuning/churn_trials.csv``.
    """
    suffix = Path(artifact_file).suffix.lower()
    if suffix == ".json":
        plain = frame.copy()
        for column in plain.columns:
            kind = plain[column].dtype.kind
            if kind in "mMO" or not pd.api.types.is_numeric_dtype(plain[column]):
                plain[column] = plain[column].astype(str)
        mlflow.log_table(plain, artifact_file)
    elif suffix == ".csv":
        _log_file(artifact_file, lambda path: frame.to_csv(path, index=False))
    elif suffix == ".parquet":
        _log_file(artifact_file, frame.to_parquet)
    else:
        raise ValueError(f"log_table writes .csv, .parquet or .json, not {artifact_file!r}")


SUMMARY_FILE = "summary.json"
"""Run-relative path of a training run's summary: every protocol's metrics, registered versions."""


def read_run_summary(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """Read a training run's summary (:data:`SUMMARY_FILE`) back from its artifacts.

    Only the tracking store and the artifact store are read (no model is loaded), so
    ``lifecycle evaluate`` answers in about as long as importing MLflow takes.

    Parameters
    ----------
    client
        Client of the store (:func:`lifecycle.models.store.open_store`).
    run_id
        The training run.

    Returns
    -------
    dict
        The summary as :func:`lifecycle.training.train.train_and_log` returned it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, SUMMARY_FILE, dst_path=tmp)
        return dict(json.loads(Path(path).read_text(encoding="utf-8")))


def evaluation_artifact(task: str) -> str:
    """Return the run-relative path of a task's evaluation set (``evaluation/<task>.parquet``)."""
    return f"evaluation/{task}.parquet"


def log_evaluation_set(task: str, frame: pd.DataFrame) -> None:
    """Log the rows a task's model is judged on: features and ``label`` of the evaluation cutoff.

    :func:`promote` scores challenger and champion on these rows.

    Parameters
    ----------
    task
        ``next_stage``, ``churn`` or ``clv``.
    frame
        Feature columns plus a ``label`` column.
    """
    if "label" not in frame.columns:
        raise ValueError("the evaluation set needs a 'label' column")
    _log_file(evaluation_artifact(task), frame.to_parquet)


def log_files(folder: Path, artifact_path: str) -> None:
    """Log every file under ``folder`` (e.g. report plots) under ``artifact_path`` of the run.

    An empty ``artifact_path`` logs them at the top of the run's artifacts.
    """
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    mlflow.log_artifacts(str(folder), artifact_path=artifact_path or None)


def pinned_requirements() -> list[str]:
    """Return ``name==version`` of :data:`REQUIREMENTS` as installed now."""
    return [f"{name}=={package_version(name)}" for name in REQUIREMENTS]


def log_estimator(
    estimator: LifecycleEstimator,
    *,
    task: str,
    registered_name: str,
    input_example: pd.DataFrame,
    record: ModelRecord | None = None,
    tags: Mapping[str, str] | None = None,
    lineage: Lineage | None = None,
) -> ModelVersion:
    """Log a fitted estimator as a pyfunc model of the active run and register it as challenger.

    Parameters
    ----------
    estimator
        Fitted :class:`lifecycle.models.lgbm.LifecycleClassifier` or
        :class:`lifecycle.models.lgbm.ClvRegressor`.
    task
        ``next_stage``, ``churn`` or ``clv``; also the model's name within the run.
    registered_name
        Registered model name (see :func:`lifecycle.models.store.registered_names`).
    input_example
        Rows holding the feature columns as :func:`lifecycle.features.build.build_features`
        makes them (other columns are left out): the signature
        (:func:`lifecycle.models.pyfunc.feature_signature`) types each feature as they do
        (counts ``long``, the rest ``double``), so the feature and scores tables the project
        writes are accepted as they are; the first few rows are stored as the example.
    record
        What serving needs from this run (:class:`lifecycle.models.store.ModelRecord`), stored in
        the
        model's MLmodel metadata and checked whenever the version is loaded; a version
        logged without one (the uplift model) cannot be served as a lifecycle task.
    tags
        Extra version tags (e.g. ``eval_cutoff``); ``task`` and ``run_id`` are always set.
    lineage
        Project, data set and feature configuration, set as version tags
        (``lifecycle.project`` ...); :func:`promote` compares them. Default: the record's,
        else none (the version reads as project ``lifecycle``, data set unknown).

    Returns
    -------
    mlflow.entities.model_registry.ModelVersion
        The new version, holding the alias ``challenger``.
    """
    from lifecycle.models.pyfunc import (
        ARTIFACT,
        LifecyclePyfunc,
        feature_signature,
        input_columns,
        save_estimator,
    )

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_estimator needs an active run: use mlflow.start_run()")
    input_example = input_example[input_columns(estimator)]
    signature = feature_signature(estimator, input_example)
    with tempfile.TemporaryDirectory() as tmp:
        info = mlflow.pyfunc.log_model(
            name=task,
            python_model=LifecyclePyfunc(),
            artifacts={ARTIFACT: str(save_estimator(estimator, tmp))},
            signature=signature,
            input_example=input_example.head(INPUT_EXAMPLE_ROWS),
            pip_requirements=pinned_requirements(),
            registered_model_name=registered_name,
            metadata=record_metadata(record) if record is not None else None,
        )
    version = str(info.registered_model_version)
    client = MlflowClient()
    if lineage is None and record is not None:
        lineage = record.lineage()
    known = lineage.tags() if lineage is not None else {}
    for key, value in {"task": task, "run_id": run.info.run_id, **known, **(tags or {})}.items():
        client.set_model_version_tag(registered_name, version, key, str(value))
    client.set_registered_model_alias(registered_name, CHALLENGER, version)
    return client.get_model_version(registered_name, version)


# --- registry moves ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    """What :func:`promote` did with one registered model."""

    name: str
    challenger: str | None
    champion: str | None
    metric: str
    challenger_value: float | None
    champion_value: float | None
    tolerance: float
    status: PromotionStatus
    reason: str
    run_id: str | None = None
    """The training run of the challenger (the models of one run move together)."""
    forceable: bool = True
    """Whether ``force`` would promote a refused challenger (never one of an unfinished run)."""

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class Rollback:
    """What :func:`rollback` did with one registered model."""

    name: str
    from_version: str | None
    to_version: str
    history: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-able dict."""
        return asdict(self)


def _registered_models(
    client: MlflowClient, names: Sequence[str] | None, project: str = DEFAULT_PROJECT
) -> list[RegisteredModel]:
    """Return the named registered models, or all of the project's models that exist."""
    try:
        wanted = list(names) if names else list(registered_names(project).values())
    except ValueError as exc:
        raise RegistryError(str(exc)) from exc
    found = []
    for name in wanted:
        try:
            found.append(client.get_registered_model(name))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            if names:
                raise RegistryError(f"no registered model named {name!r}") from exc
    if not found:
        raise RegistryError(
            f"none of {', '.join(wanted)} is registered at {client.tracking_uri}: train first"
        )
    return found


def _history(model: RegisteredModel) -> list[str]:
    """Return the earlier champion versions recorded on a registered model."""
    raw = model.tags.get(HISTORY_TAG)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{model.name}: tag {HISTORY_TAG} is not JSON: {raw!r}") from exc
    if not isinstance(history, list):
        raise RegistryError(f"{model.name}: tag {HISTORY_TAG} is not a list: {raw!r}")
    return [str(v) for v in history]


def _task_of(client: MlflowClient, name: str, version: str) -> str:
    """Return the task of a version: its ``task`` tag, else the one of its registered name."""
    task: str | None = client.get_model_version(name, version).tags.get("task")
    if task is None:
        task = task_of_model(name)
    if task is None or task not in SPECS:
        raise RegistryError(f"{name} v{version}: unknown task {task!r} (tag 'task')")
    return task


def _evaluation_set(client: MlflowClient, name: str, version: str, task: str) -> pd.DataFrame:
    """Download the evaluation set logged with the run of a version."""
    run_id = client.get_model_version(name, version).run_id
    artifact = evaluation_artifact(task)
    if not run_id:
        raise RegistryError(f"{name} v{version} has no run, so no evaluation set")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, artifact, dst_path=tmp)
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"{name} v{version}: run {run_id} has no evaluation set {artifact}"
            ) from exc
        return pd.read_parquet(path)


def _score(task: str, labels: pd.Series, predictions: pd.Series) -> float:
    """Return the task's primary metric (NaN when it is undefined on these rows)."""
    from sklearn.metrics import mean_absolute_error, roc_auc_score

    y = labels.to_numpy(dtype=float)
    p = predictions.to_numpy(dtype=float)
    if spec(task).primary_metric.name == "roc_auc":
        if len(set(y.tolist())) < 2:
            return math.nan
        return float(roc_auc_score(y, p))
    return float(mean_absolute_error(y, p)) if len(y) else math.nan


def _compare(
    client: MlflowClient, name: str, task: str, challenger: str, champion: str | None
) -> tuple[float, float | None]:
    """Score challenger (and champion) on the challenger's evaluation set, on shared rows."""
    from lifecycle.models.pyfunc import conform

    frame = _evaluation_set(client, name, challenger, task)
    features, labels = frame.drop(columns="label"), frame["label"]
    column = spec(task).prediction
    predictions = {}
    for version in [challenger] if champion is None else [challenger, champion]:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        try:
            # versions logged before counts were typed long take every feature as double
            out = model.predict(conform(features, model.metadata.get_input_schema()))
        except (MlflowException, ValueError, KeyError) as exc:
            raise RegistryError(
                f"{name} v{version} cannot score the evaluation set of v{challenger}: {exc}"
            ) from exc
        predictions[version] = pd.Series(out[column].to_numpy(dtype=float), index=frame.index)
    rows = labels.notna()
    for values in predictions.values():
        rows &= values.notna()
    challenger_value = _score(task, labels[rows], predictions[challenger][rows])
    champion_value = (
        None if champion is None else _score(task, labels[rows], predictions[champion][rows])
    )
    return challenger_value, champion_value


def _decide(
    metric: PrimaryMetric, tolerance: float, challenger: float, champion: float
) -> tuple[bool, str]:
    """Return whether the challenger may replace the champion, and why."""
    name = metric.name
    if not (math.isfinite(challenger) and math.isfinite(champion)):
        return False, f"{name} is undefined on the evaluation set"
    if metric.higher_is_better:
        bar = champion - tolerance
        ok = challenger >= bar
        word = "at least" if ok else "below"
    else:
        bar = champion * (1 + tolerance)
        ok = challenger <= bar
        word = "at most" if ok else "above"
    return ok, f"{name} {challenger:.4f} {word} {bar:.4f} (champion {champion:.4f})"


def _lineage(client: MlflowClient, name: str, version: str, project: str) -> Lineage:
    """Return a version's lineage from its tags, refusing a version of another project."""
    lineage = Lineage.from_tags(client.get_model_version(name, version).tags)
    if lineage.project != project:
        raise RegistryError(
            f"{name} v{version} belongs to project {lineage.project!r}, not {project!r}; "
            f"pass --project {lineage.project}"
        )
    return lineage


def crossing(
    name: str, version: str, lineage: Lineage, champion: str, champion_lineage: Lineage
) -> str:
    """Return one sentence naming both sides when two versions' lineages differ, else ``""``.

    Only fields both versions record are compared; the data fingerprint (a new snapshot of
    the same data set) never counts.

    Examples
    --------
    >>> a = Lineage("lifecycle", "cdnow", "sha256:1")
    >>> b = Lineage("lifecycle", "online_retail", "sha256:1")
    >>> crossing("lifecycle-churn", "2", a, "1", b)  # doctest: +NORMALIZE_WHITESPACE
    "lifecycle-churn v2 (project lifecycle, data set 'cdnow', feature config sha256:1) and
    champion v1 (project lifecycle, data set 'online_retail', feature config sha256:1) differ
    in dataset"
    """
    fields = lineage.differs(champion_lineage)
    if not fields:
        return ""
    return (
        f"{name} v{version} ({lineage.describe()}) and champion v{champion} "
        f"({champion_lineage.describe()}) differ in {', '.join(fields)}"
    )


def _unknown_note(version: str, lineage: Lineage) -> str:
    """Say which lineage fields an older version does not record (so they were not checked)."""
    unknown = lineage.unknown()
    if not unknown:
        return ""
    return (
        f"; v{version} records no {', '.join(unknown)} (logged before lineage was recorded; "
        f"read as project {lineage.project}), so those were not checked"
    )


def _plan_promotion(
    client: MlflowClient,
    model: RegisteredModel,
    tolerance: float | None,
    force: bool,
    project: str = DEFAULT_PROJECT,
) -> Promotion:
    """Compare one model's challenger with its champion and decide, moving nothing."""
    name = model.name
    challenger = _alias(model, CHALLENGER)
    champion = _alias(model, CHAMPION)
    if challenger is None:
        return Promotion(
            name, None, champion, "", None, None, 0.0, "no challenger", "no version is challenger"
        )
    task = _task_of(client, name, challenger)
    metric = spec(task).primary_metric
    tol = metric.tolerance if tolerance is None else tolerance
    run_id = client.get_model_version(name, challenger).run_id or None
    unready = _unfinished(client, name, challenger)
    if unready:
        # Neither a score nor --force makes a killed run's half-logged models servable.
        reason = f"{unready}; only versions of finished training runs are promoted"
        return Promotion(
            name,
            challenger,
            champion,
            metric.name,
            None,
            None,
            tol,
            "refused",
            reason,
            run_id,
            forceable=False,
        )
    lineage = _lineage(client, name, challenger, project)
    across, note = "", _unknown_note(challenger, lineage)
    if champion is not None and champion != challenger:
        champion_lineage = _lineage(client, name, champion, project)
        across = crossing(name, challenger, lineage, champion, champion_lineage)
        note = _unknown_note(champion, champion_lineage) or note
    if across and not force:
        # Scores on another data set's rows say nothing: refuse before scoring.
        reason = f"not comparable: {across} (--force overrides)"
        return Promotion(
            name, challenger, champion, metric.name, None, None, tol, "refused", reason, run_id
        )
    try:
        value, champion_value = _compare(client, name, task, challenger, champion)
    except RegistryError:
        if champion is not None and not force:
            raise
        value, champion_value = None, None
    status: PromotionStatus
    if champion is None:
        status, reason = "first champion", "no champion yet"
    elif force and across:
        status, reason = "forced", f"--force: promoted across lineages: {across}"
    elif force:
        status, reason = "forced", "--force: promoted whatever the comparison"
    elif value is None or champion_value is None:
        status, reason = "refused", f"{metric.name} could not be computed"
    elif mismatch := _incomparable(client, name, challenger, champion):
        status, reason = "refused", f"not comparable: {mismatch} differ (--force overrides)"
    else:
        ok, reason = _decide(metric, tol, value, champion_value)
        status = "promoted" if ok else "refused"
    reason += note if champion is not None else ""
    return Promotion(
        name,
        challenger,
        champion,
        metric.name,
        _finite(value),
        _finite(champion_value),
        tol,
        status,
        reason,
        run_id,
    )


COMPARABLE_TAGS = ("horizon_days", "protocol")
"""Version tags that must match for a champion and a challenger to be compared at all."""


def _incomparable(client: MlflowClient, name: str, challenger: str, champion: str) -> str:
    """Name the tags (horizon, protocol) in which two versions differ; empty when none."""
    a = client.get_model_version(name, challenger).tags
    b = client.get_model_version(name, champion).tags
    return ", ".join(t for t in COMPARABLE_TAGS if t in a and t in b and a[t] != b[t])


def _finite(value: float | None) -> float | None:
    """Return ``value``, or None when it is missing or not finite (JSON has no NaN)."""
    return value if value is not None and math.isfinite(value) else None


def _alias(model: RegisteredModel, alias: str) -> str | None:
    """Return the version holding ``alias``, as a string, or None."""
    version = model.aliases.get(alias)
    return None if version is None else str(version)


def _unfinished(client: MlflowClient, name: str, version: str) -> str:
    """Say why a version's run is not a finished training run with its files, else ``""``.

    Promotable: the run ended FINISHED, logged :data:`SUMMARY_FILE`, and the version's model
    was fully uploaded (its logged model is READY and holds an ``MLmodel`` file).
    """
    from mlflow.entities import LoggedModelStatus

    model_version = client.get_model_version(name, version)
    run_id = model_version.run_id
    where = f"{name} v{version}"
    if not run_id:
        return f"{where} has no training run"
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return f"{where}: its run {run_id} no longer exists"
    if run.info.status != "FINISHED":
        ended = run.data.tags.get(ENDED_TAG)
        why = f" ({ended})" if ended else ""
        return f"{where}: its run {run_id} is {run.info.status}{why}, not FINISHED"
    if not any(f.path == SUMMARY_FILE for f in client.list_artifacts(run_id)):
        return f"{where}: its run {run_id} has no {SUMMARY_FILE}"
    model_id = getattr(model_version, "model_id", None)
    if model_id:
        logged = client.get_logged_model(model_id)
        files = mlflow.artifacts.list_artifacts(artifact_uri=logged.artifact_location)
        if logged.status != LoggedModelStatus.READY or not any(
            Path(f.path).name == "MLmodel" for f in files
        ):
            return f"{where}: its model {model_id} was not fully logged"
    return ""


MOVES = ("promoted", "forced", "first champion")
"""Promotion statuses that move the alias ``champion``."""


def _keep_runs_whole(
    client: MlflowClient, plans: list[Promotion], project: str, force: bool
) -> list[Promotion]:
    """Refuse every challenger of a run when one of the run's models cannot move with it.

    A run's models are its registered versions of the project (by their lineage tags). Each
    must be this command's challenger (or already champion) and not refused; otherwise none
    moves.
    """
    planned = {p.name: p for p in plans}
    result = list(plans)
    for run_id in sorted({p.run_id for p in plans if p.run_id and p.challenger}):
        members = [p for p in plans if p.run_id == run_id and p.challenger]
        blockers: list[str] = []
        forceable = True
        for p in members:
            if p.status not in MOVES:
                blockers.append(f"{p.name} v{p.challenger} was refused")
                forceable = forceable and p.forceable
        for mv in client.search_model_versions(f"run_id = '{run_id}'"):
            version = str(mv.version)
            if Lineage.from_tags(mv.tags).project != project or any(
                p.name == mv.name and p.challenger == version for p in members
            ):
                continue
            if alias_version(client, mv.name, CHAMPION) == version:
                continue  # already champion: the set is whole once the others move
            forceable = False
            other = planned.get(mv.name)
            if other is None:
                blockers.append(
                    f"{mv.name} v{version} of the same run was not named (name every model of "
                    "the run with --model, or none)"
                )
            else:
                now = f"v{other.challenger}" if other.challenger else "none"
                blockers.append(
                    f"{mv.name} v{version} of the same run is no longer the challenger "
                    f"(challenger: {now}); train again"
                )
        if not blockers:
            continue
        why = "; ".join(blockers)
        for i, p in enumerate(result):
            if p.run_id == run_id and p.challenger and p.status in MOVES:
                result[i] = replace(
                    p,
                    status="refused",
                    reason=f"held back with its run {run_id}: {why}; the models of one run "
                    f"move together (it alone: {p.reason})",
                    forceable=forceable and not force,
                )
    return result


def promote(
    client: MlflowClient,
    names: Sequence[str] | None = None,
    *,
    project: str = DEFAULT_PROJECT,
    tolerance: float | None = None,
    force: bool = False,
) -> list[Promotion]:
    """Move the alias ``champion`` to the challengers of one training run, together or not at all.

    Only a version of a finished training run is promoted: its run ended FINISHED, logged
    ``summary.json``, and its model was fully logged; the challenger of a killed or
    unfinished run is refused, ``force`` or not. Before deciding, RUNNING runs of this host
    whose training process is gone (``kill -9``) are ended FAILED
    (:func:`fail_abandoned_runs`).

    Challenger and champion are scored on the challenger run's evaluation set
    (:func:`log_evaluation_set`), on the rows both predict for: ROC AUC for ``next_stage``
    and ``churn`` (refused when below the champion's by more than ``tolerance``, default
    0.005), MAE for ``clv`` (refused when above the champion's by more than ``tolerance``
    relative, default 0.02). Without a champion the challenger is promoted. A challenger
    whose project, data set or feature configuration (its
    :class:`~lifecycle.models.store.Lineage` tags) differs from the champion's is refused
    without scoring; a new snapshot of the same data set (another data fingerprint) is not.
    A version without lineage tags (logged before they were recorded) reads as project
    ``lifecycle`` with an unknown data set: what it does not record is not compared, and the
    reason says so.

    The models one run registered move together: when one is refused, was not named in
    ``names``, or is no longer the challenger, its run-mates are refused too. The aliases
    move all or nothing (a failed move puts the earlier ones back). Promoting appends the
    previous champion to the tag ``champion_history`` (the last :data:`HISTORY_LIMIT`) and
    removes the alias ``challenger``. Every comparison is made before anything moves.

    Parameters
    ----------
    client
        Client from :func:`connect` (models are loaded from MLflow's registry URI).
    names
        Registered model names; default: those of the project
        (:func:`lifecycle.models.store.registered_names`) that exist.
    project
        The project the versions must belong to (a version of another one is an error).
    tolerance
        Overrides every model's default tolerance.
    force
        Promote finished runs' challengers whatever their score or lineage (``forced``).

    Returns
    -------
    list of Promotion
        One per model, in the order of ``names``.

    Examples
    --------
    >>> [p.status for p in promote(client)]  # doctest: +SKIP
    ['promoted', 'promoted', 'promoted']
    """
    models = _registered_models(client, names, project)
    fail_abandoned_runs(client, _challenger_experiments(client, models))
    plans = [_plan_promotion(client, model, tolerance, force, project) for model in models]
    plans = _keep_runs_whole(client, plans, project, force)
    _move_together(client, [p for p in plans if p.status in MOVES and p.challenger])
    return plans


def _challenger_experiments(client: MlflowClient, models: Sequence[RegisteredModel]) -> list[str]:
    """Return the experiments of the models' challenger runs."""
    found: set[str] = set()
    for model in models:
        version = _alias(model, CHALLENGER)
        if version is None:
            continue
        run_id = client.get_model_version(model.name, version).run_id
        if not run_id:
            continue
        try:
            found.add(str(client.get_run(run_id).info.experiment_id))
        except MlflowException:
            continue  # a deleted run: the plan refuses its version
    return sorted(found)


@dataclass(frozen=True)
class _Move:
    """One model's alias move: where ``champion`` goes, and the history it leaves."""

    name: str
    to_version: str
    history: list[str]
    drop_challenger: bool


def _apply_moves(client: MlflowClient, moves: Sequence[_Move]) -> None:
    """Apply alias moves all or nothing: when one fails, put the models moved before back."""
    saved = []
    for move in moves:
        model = client.get_registered_model(move.name)
        saved.append(
            (
                move.name,
                _alias(model, CHAMPION),
                _alias(model, CHALLENGER),
                model.tags.get(HISTORY_TAG),
            )
        )
    done = 0
    try:
        for move in moves:
            client.set_registered_model_tag(
                move.name, HISTORY_TAG, json.dumps(move.history[-HISTORY_LIMIT:])
            )
            client.set_registered_model_alias(move.name, CHAMPION, move.to_version)
            if move.drop_challenger:
                client.delete_registered_model_alias(move.name, CHALLENGER)
            done += 1
    except (MlflowException, OSError) as exc:
        for name, champion, challenger, history in reversed(saved[: done + 1]):
            _restore(client, name, champion, challenger, history)
        moved = ", ".join(m.name for m in moves)
        raise RegistryError(f"moving champion of {moved} failed, nothing moved: {exc}") from exc


def _restore(
    client: MlflowClient,
    name: str,
    champion: str | None,
    challenger: str | None,
    history: str | None,
) -> None:
    """Put a model's aliases and history tag back as they were."""
    if champion is None:
        client.delete_registered_model_alias(name, CHAMPION)
    else:
        client.set_registered_model_alias(name, CHAMPION, champion)
    if challenger is not None:
        client.set_registered_model_alias(name, CHALLENGER, challenger)
    if history is None:
        client.delete_registered_model_tag(name, HISTORY_TAG)
    else:
        client.set_registered_model_tag(name, HISTORY_TAG, history)


def _move_together(client: MlflowClient, plans: Sequence[Promotion]) -> None:
    """Point ``champion`` at each plan's challenger, recording the old champion, all or nothing."""
    moves = []
    for plan in plans:
        if plan.challenger is None:
            continue
        history = _history(client.get_registered_model(plan.name))
        if plan.champion is not None and plan.champion != plan.challenger:
            history = [*history, plan.champion]
        moves.append(_Move(plan.name, plan.challenger, history, drop_challenger=True))
    _apply_moves(client, moves)


def rollback(
    client: MlflowClient,
    names: Sequence[str] | None = None,
    *,
    project: str = DEFAULT_PROJECT,
    force: bool = False,
    steps: int = 1,
) -> list[Rollback]:
    """Move the alias ``champion`` back ``steps`` earlier champions, every model together.

    Each model keeps its last :data:`HISTORY_LIMIT` champions (tag ``champion_history``);
    ``steps=2`` goes back to the champion before the previous one. The models move all or
    nothing.

    Parameters
    ----------
    client
        Client from :func:`connect`.
    names
        Registered model names; default: every model of the project with a champion
        history.
    project
        The project the versions must belong to.
    force
        Roll back even to versions of another data set or feature configuration, or of
        several training runs.
    steps
        How many champions to go back (1 is the previous one).

    Returns
    -------
    list of Rollback
        One per model rolled back.

    Raises
    ------
    RegistryError
        A named model (or, by default, every model) has no earlier champion, one has fewer
        than ``steps``, or the earlier version was deleted. Nothing moves then.
    LineageError
        The earlier champion comes from another data set or feature configuration than the
        champion, or the earlier champions come from several runs (and not ``force``).
        Nothing moves then.

    Examples
    --------
    >>> [r.to_version for r in rollback(client, steps=2)]  # doctest: +SKIP
    ['1', '1', '1']
    """
    if steps < 1:
        raise RegistryError(f"steps must be at least 1, not {steps}")
    plans: list[Rollback] = []
    for model in _registered_models(client, names, project):
        history = _history(model)
        if not history:
            if names:
                raise RegistryError(f"{model.name} has no earlier champion to roll back to")
            continue
        if len(history) < steps:
            raise RegistryError(
                f"{model.name} has {len(history)} earlier champion(s), not {steps} to go back"
            )
        previous = history[-steps]
        try:
            client.get_model_version(model.name, previous)
        except MlflowException as exc:
            raise RegistryError(
                f"{model.name}: the earlier champion v{previous} no longer exists"
            ) from exc
        current = _alias(model, CHAMPION)
        if current is not None and current != previous:
            across = crossing(
                model.name,
                previous,
                _lineage(client, model.name, previous, project),
                current,
                _lineage(client, model.name, current, project),
            )
            if across and not force:
                raise LineageError(f"not rolling back: {across}; --force rolls back anyway")
        plans.append(Rollback(model.name, current, previous, history[:-steps]))
    if not plans:
        raise RegistryError("no model has an earlier champion to roll back to")
    runs = {p.name: client.get_model_version(p.name, p.to_version).run_id or "" for p in plans}
    if len(set(runs.values())) > 1 and not force:
        trained = ", ".join(f"{p.name} v{p.to_version} (run {runs[p.name]})" for p in plans)
        raise LineageError(
            f"not rolling back: the earlier champions come from several runs ({trained}); "
            "--force rolls back anyway"
        )
    _apply_moves(
        client, [_Move(p.name, p.to_version, p.history, drop_challenger=False) for p in plans]
    )
    return plans


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render rows as left-aligned, space-separated columns under a header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_promotions(promotions: Sequence[Promotion]) -> str:
    """Return a plain-text table of :func:`promote`'s results, one row per model."""
    header = [
        "model",
        "challenger",
        "champion",
        "metric",
        "challenger score",
        "champion score",
        "tolerance",
        "status",
        "reason",
    ]
    rows = []
    for p in promotions:
        relative = any(
            s.primary_metric.relative for s in SPECS.values() if s.primary_metric.name == p.metric
        )
        tolerance = "-" if not p.metric else f"{p.tolerance:g}" + (" rel" if relative else "")
        rows.append(
            [
                p.name,
                f"v{p.challenger}" if p.challenger else "-",
                f"v{p.champion}" if p.champion else "-",
                p.metric or "-",
                _number(p.challenger_value),
                _number(p.champion_value),
                tolerance,
                p.status,
                p.reason,
            ]
        )
    return _text_table(header, rows)


def format_rollbacks(rollbacks: Sequence[Rollback]) -> str:
    """Return a plain-text table of :func:`rollback`'s results, one row per model."""
    header = ["model", "champion was", "champion now", "earlier champions left"]
    rows = [
        [
            r.name,
            f"v{r.from_version}" if r.from_version else "-",
            f"v{r.to_version}",
            ", ".join(f"v{v}" for v in r.history) or "-",
        ]
        for r in rollbacks
    ]
    return _text_table(header, rows)
