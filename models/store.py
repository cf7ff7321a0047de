"""The model store: where registered lifecycle models live, and how a champion is loaded.

One module owns the MLflow store for training, scoring, the uplift command and serving alike:

- where it is (:func:`resolve_tracking_uri`, :func:`sqlite_database`, :func:`missing_store`);
- how to open it safely (:func:`connect`: a file lock around schema creation and WAL journaling
  for a SQLite store);
- the training -> serving contract: every registered version carries a typed, versioned
  :class:`ModelRecord` (the lifecycle config its features were built with, its horizon and
  cutoffs, the headline metrics the service shows, the training population's typical
  feature values) in its MLmodel metadata, written by training and checked on load;
- alias -> version -> estimator (:func:`load_version`, :func:`load_champions`,
  :func:`load_uplift`), with the estimator's task and signature checked against the record;
- projects: one store holds the models of several data sets or business units, each under its
  own names (:func:`registered_names`: project ``retail`` registers ``retail-churn`` ...; the
  default project ``lifecycle`` keeps ``lifecycle-churn`` ...), and every run and version
  carries its :class:`Lineage` (project, data set, feature configuration) as tags, so a
  registry move can refuse to cross from one data set to another.

Nothing happens on import; MLflow is imported only by the functions that need it, so the
command line and the service import this module cheaply.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lifecycle.features.config import LifecycleConfig

# Re-exported: the CLI checks names and the store with these before any heavy import.
from lifecycle.models.locate import (  # noqa: F401
    DATASET_PATTERN,
    DEFAULT_PROJECT,
    MAX_PROJECT_LENGTH,
    PROJECT_PATTERN,
    check_dataset,
    check_project,
    missing_store,
    resolve_tracking_uri,
    sqlite_database,
)
from lifecycle.models.tasks import SPECS, TASKS, Task

if TYPE_CHECKING:
    from mlflow import MlflowClient

UPLIFT_NAME = "lifecycle-uplift"
"""Registered name of the campaign uplift model of the default project (optional)."""

PROJECT_TAG = "lifecycle.project"
DATASET_TAG = "lifecycle.dataset"
FEATURE_CONFIG_TAG = "lifecycle.feature_config"
FINGERPRINT_TAG = "lifecycle.data_fingerprint"
MAPPING_TAG = "lifecycle.mapping"

CHAMPION = "champion"
CHALLENGER = "challenger"

RECORD_KEY = "lifecycle_record"
"""Key of the :class:`ModelRecord` in a logged model's MLmodel ``metadata``."""

RECORD_VERSION = 1
"""Schema version of :class:`ModelRecord`; a record of another version is refused on load."""


class StoreError(RuntimeError):
    """A model cannot be loaded from the store: no store, no version, or one that does not fit."""


def registered_names(project: str = DEFAULT_PROJECT) -> dict[Task, str]:
    """Return the registered model name of each task in a project.

    The default project keeps the tasks' own names (:attr:`TaskSpec.registered_name`); another
    project puts its name in place of their ``lifecycle`` prefix.

    Examples
    --------
    >>> registered_names()["churn"]
    'lifecycle-churn'
    >>> registered_names("retail")["next_stage"]
    'retail-next-stage'
    """
    check_project(project)
    prefix = f"{DEFAULT_PROJECT}-"
    return {task: f"{project}-{SPECS[task].registered_name.removeprefix(prefix)}" for task in TASKS}


def uplift_name(project: str = DEFAULT_PROJECT) -> str:
    """Return the registered name of a project's uplift model.

    Examples
    --------
    >>> uplift_name("retail")
    'retail-uplift'
    """
    return f"{check_project(project)}-{UPLIFT_NAME.removeprefix(DEFAULT_PROJECT + '-')}"


def feature_config_id(config: LifecycleConfig) -> str:
    """Return a short hash of a feature configuration: the lifecycle config and the features.

    Two models get the same id when their features were built with the same vocabulary,
    stage rules, windows and feature definitions (names and SQL), so a model built on another
    feature configuration is recognised even when its column names agree.

    Examples
    --------
    >>> feature_config_id(LifecycleConfig()).startswith("sha256:")
    True
    """
    from lifecycle.features.definitions import model_features

    payload = {
        "lifecycle": config.model_dump(mode="json"),
        "features": [[f.name, f.sql] for f in model_features(config)],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Lineage:
    """Where a model comes from: its project, data set and feature configuration.

    Logged as tags on every training run and registered version (:meth:`tags`) and read back
    by the registry moves (:meth:`from_tags`). ``project``, ``dataset`` and
    ``feature_config`` must agree for one version to replace another; the data fingerprint
    changes with every new snapshot of the same data set and never blocks a move. A version
    logged before lineage was recorded reads as project ``lifecycle`` with an unknown data set
    and feature configuration (None).

    Examples
    --------
    >>> a = Lineage("retail", "online_retail", "sha256:1", "sha256:aa")
    >>> b = Lineage("retail", "cdnow", "sha256:1", "sha256:bb")
    >>> a.differs(b)
    ['dataset']
    """

    project: str = DEFAULT_PROJECT
    dataset: str | None = None
    feature_config: str | None = None
    data_fingerprint: str | None = None
    mapping: str | None = None

    COMPARED = ("project", "dataset", "feature_config")

    def tags(self) -> dict[str, str]:
        """Return the known fields as MLflow tags (``lifecycle.project`` ...)."""
        values = {
            PROJECT_TAG: self.project,
            DATASET_TAG: self.dataset,
            FEATURE_CONFIG_TAG: self.feature_config,
            FINGERPRINT_TAG: self.data_fingerprint,
            MAPPING_TAG: self.mapping,
        }
        return {k: v for k, v in values.items() if v is not None}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Lineage:
        """Read a lineage back from tags; missing ones read as the defaults (unknown)."""
        return cls(
            project=tags.get(PROJECT_TAG, DEFAULT_PROJECT),
            dataset=tags.get(DATASET_TAG),
            feature_config=tags.get(FEATURE_CONFIG_TAG),
            data_fingerprint=tags.get(FINGERPRINT_TAG),
            mapping=tags.get(MAPPING_TAG),
        )

    def differs(self, other: Lineage) -> list[str]:
        """Name the compared fields in which two lineages differ, where both are known."""
        return [
            name
            for name in self.COMPARED
            if getattr(self, name) is not None
            and getattr(other, name) is not None
            and getattr(self, name) != getattr(other, name)
        ]

    def unknown(self) -> list[str]:
        """Name the compared fields this lineage does not know (an older version)."""
        return [name for name in self.COMPARED if getattr(self, name) is None]

    def describe(self) -> str:
        """Describe the lineage in words, e.g. ``project retail, data set 'cdnow', ...``."""
        dataset = repr(self.dataset) if self.dataset is not None else "unknown"
        features = self.feature_config or "unknown"
        return f"project {self.project}, data set {dataset}, feature config {features}"


class ModelRecord(BaseModel):
    """What serving needs from the training run of one registered version.

    Logged in the model's MLmodel ``metadata`` under :data:`RECORD_KEY` by training and
    validated (strictly, with its :attr:`record_version`) whenever the version is loaded, so
    a served model never depends on reading other files of its run by name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    record_version: Literal[1] = 1
    task: Task
    run_id: str
    lifecycle: LifecycleConfig
    feature_names: tuple[str, ...]
    horizon_days: int
    protocol: Literal["time", "customer"]
    trained_on: tuple[str, ...]
    validated_on: str
    evaluated_on: str
    metrics: dict[str, float]
    """The task's headline metrics (:attr:`TaskSpec.headline_metrics`) on its evaluation."""
    typical: dict[str, float]
    """Median of each feature over the training population at the evaluation cutoff."""
    typical_by_stage: dict[str, dict[str, float]] = Field(default_factory=dict)
    """The same medians per lifecycle stage (records written before them: empty, and
    explanations compare with :attr:`typical`)."""
    project: str = DEFAULT_PROJECT
    """The project the version belongs to (records written before projects: ``lifecycle``)."""
    dataset: str | None = None
    """The data set it was trained on (:class:`Lineage`; None: not recorded)."""
    feature_config: str | None = None
    """:func:`feature_config_id` of :attr:`lifecycle` (None: not recorded)."""
    data_fingerprint: str | None = None
    """Content hash of the event log it was trained on (None: not recorded)."""

    def lineage(self) -> Lineage:
        """Return the version's :class:`Lineage` as its record tells it."""
        return Lineage(self.project, self.dataset, self.feature_config, self.data_fingerprint)

    def info(self) -> dict[str, Any]:
        """Describe the version as ``/model_info`` does (horizon, protocol, cutoffs, metrics)."""
        return {
            "horizon_days": self.horizon_days,
            "protocol": self.protocol,
            "trained_on": list(self.trained_on),
            "validated_on": self.validated_on,
            "evaluated_on": self.evaluated_on,
            "metrics": dict(self.metrics),
        }


@dataclass(frozen=True)
class LoadedModel:
    """One registered version, loaded: its estimator and its checked record."""

    task: Task
    name: str
    version: str
    run_id: str
    estimator: Any
    record: ModelRecord


def artifact_root_for(uri: str) -> str | None:
    """Return where experiments of a tracking URI keep artifacts, or None to let MLflow decide.

    For a local SQLite file it is ``mlartifacts`` beside the database (for the default URI:
    ``<cwd>/mlartifacts``) as a ``file://`` URI; a server or another database decides itself.

    Examples
    --------
    >>> artifact_root_for("sqlite:////srv/mlflow.db")
    'file:///srv/mlartifacts'
    >>> artifact_root_for("http://mlflow:5000") is None
    True
    """
    database = sqlite_database(uri)
    if database is None:
        return None
    return (database.parent / "mlartifacts").as_uri()


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _use_wal(database: Path) -> None:
    """Switch the database file to WAL journaling (persistent), so readers never block.

    WAL only speeds things up; if another process holds the database too long for the
    switch, the file keeps its journal mode.
    """
    with closing(sqlite3.connect(database, timeout=10)) as conn:
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            with suppress(sqlite3.OperationalError):
                conn.execute("PRAGMA journal_mode=WAL")


def _has_schema(database: Path) -> bool:
    """Whether the file has every MLflow table (the check MLflow runs before migrating)."""
    import mlflow.store.db.utils  # noqa: F401 - registers every MLflow table on Base
    from mlflow.store.db.base_sql_model import Base

    with closing(sqlite3.connect(database, timeout=60)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return set(Base.metadata.tables) <= {name for (name,) in rows}


def connect(uri: str | None = None) -> MlflowClient:
    """Point MLflow (tracking and registry) at a store and return a client for it.

    For a SQLite store, the schema is created or migrated under an exclusive file lock
    (``<database>.lock``), so that several training processes starting on a fresh database
    do not run MLflow's migrations at the same time (they fail with "table ... already
    exists" or "duplicate column"), and the file is switched to WAL journaling, so that
    reads never wait for a writer. Writers then queue on SQLite's busy timeout, which
    MLflow sets on every session.

    Parameters
    ----------
    uri
        Tracking URI; see :func:`resolve_tracking_uri` for the default.

    Returns
    -------
    mlflow.MlflowClient
        A client for the store; ``mlflow.start_run`` and ``mlflow.pyfunc.load_model`` use
        the same store.
    """
    import mlflow

    resolved = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    database = sqlite_database(resolved)
    if database is not None:
        with _exclusive_lock(database.with_name(database.name + ".lock")):
            _use_wal(database)
            if not _has_schema(database):
                # MlflowClient opens the tracking store at once, which creates or migrates
                # the schema when a table is missing.
                return mlflow.MlflowClient(tracking_uri=resolved, registry_uri=resolved)
    return mlflow.MlflowClient(tracking_uri=resolved, registry_uri=resolved)


def open_store(uri: str | None = None, *, set_global: bool = True) -> MlflowClient:
    """Open an existing store for reading models (refusing a SQLite file that is missing).

    Unlike :func:`connect` it writes nothing (no lock file, no change of journal mode), so a
    service can read a store mounted read-only. With ``set_global`` (the default) MLflow's
    process-wide tracking and registry URIs point at it too, which ``models:/`` loading needs;
    a background poll that only reads aliases passes False, so it never moves them under
    another thread's feet.

    Raises
    ------
    StoreError
        When the store is a local SQLite file that does not exist (MLflow would create an
        empty one instead of failing).
    """
    resolved = resolve_tracking_uri(uri)
    problem = missing_store(resolved)
    if problem:
        raise StoreError(problem)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    if set_global:
        mlflow.set_tracking_uri(resolved)
        mlflow.set_registry_uri(resolved)
    return mlflow.MlflowClient(tracking_uri=resolved, registry_uri=resolved)


def record_metadata(record: ModelRecord) -> dict[str, Any]:
    """Return the MLmodel ``metadata`` that carries a record (for ``log_model(metadata=...)``)."""
    return {RECORD_KEY: record.model_dump(mode="json")}


def read_record(metadata: Mapping[str, Any] | None, where: str) -> ModelRecord:
    """Validate the record in a loaded model's MLmodel ``metadata``.

    Raises
    ------
    StoreError
        When the record is missing, of another :data:`RECORD_VERSION`, or invalid; the
        message names the version (``where``) and the field.
    """
    raw = (metadata or {}).get(RECORD_KEY)
    if raw is None:
        raise StoreError(
            f"{where} carries no lifecycle record (logged by an older version of this "
            "project?); retrain it with `lifecycle train`"
        )
    found = raw.get("record_version") if isinstance(raw, Mapping) else None
    if found != RECORD_VERSION:
        raise StoreError(
            f"{where} has a lifecycle record of version {found!r}; this code reads version "
            f"{RECORD_VERSION}"
        )
    try:
        return ModelRecord.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise StoreError(
            f"{where}: its lifecycle record is invalid at {field}: {first['msg']}"
        ) from exc


def _check_signature(model: Any, estimator: Any, where: str) -> None:
    schema = model.metadata.get_input_schema()
    if schema is None or schema.input_names() != list(estimator.feature_names):
        raise StoreError(
            f"{where}: its signature does not list the features the model was fitted on"
        )
    # counts are long (as the feature builder writes them) since issue 16, double before
    kinds = {str(t).removeprefix("DataType.") for t in schema.input_types()}
    if not kinds <= {"double", "long"}:
        raise StoreError(f"{where}: signature inputs must all be numbers (double or long)")


def load_version(client: MlflowClient, task: Task, name: str, version: str) -> LoadedModel:
    """Load one registered version of a task's model and check it against its record.

    Parameters
    ----------
    client
        A client of the store (:func:`connect` / :func:`open_store`).
    task
        The task the version must predict.
    name, version
        Registered model name and version number.

    Returns
    -------
    LoadedModel
        The estimator (the pyfunc unwrapped, so its boosters answer ``pred_contrib``) and
        its :class:`ModelRecord`.

    Raises
    ------
    StoreError
        When the version is not a model of ``task``, its signature does not list its
        features, or its record is missing or does not fit.
    """
    import mlflow

    from lifecycle.models.distribution import ClvDistribution
    from lifecycle.models.lgbm import ClvRegressor, LifecycleClassifier

    where = f"{name} v{version}"
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    estimator = model.unwrap_python_model().estimator
    kinds = LifecycleClassifier | ClvRegressor | ClvDistribution
    if not isinstance(estimator, kinds) or estimator.task != task:
        raise StoreError(f"{where} is not a {task} model")
    _check_signature(model, estimator, where)
    record = read_record(model.metadata.metadata, where)
    if record.task != task or list(record.feature_names) != list(estimator.feature_names):
        raise StoreError(f"{where}: its lifecycle record does not describe this model")
    run_id = str(client.get_model_version(name, version).run_id)
    return LoadedModel(task, name, str(version), run_id, estimator, record)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Return the version of ``name`` holding ``alias``, or None when none does."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def load_champions(
    client: MlflowClient,
    *,
    alias: str = CHAMPION,
    project: str = DEFAULT_PROJECT,
    names: Mapping[str, str] | None = None,
    tasks: Sequence[Task] | None = None,
    required: bool = True,
) -> dict[Task, LoadedModel]:
    """Load a project's versions holding ``alias``, one per task, by version number.

    Parameters
    ----------
    client
        A client of the store.
    alias
        Registry alias to resolve (``champion`` by default).
    project
        The project whose models to load (:func:`registered_names`); every version loaded
        must belong to it, and the versions must come from one data set.
    names
        Registered name per task, overriding the project's names.
    tasks
        Tasks to load; default every task.
    required
        Raise when a task has no version holding ``alias``; otherwise leave it out.

    Returns
    -------
    dict
        Task -> :class:`LoadedModel`, in task order.

    Raises
    ------
    StoreError
        For an unknown task in ``names``, a missing version (when ``required``), a version
        that does not load or fit (see :func:`load_version`), a version of another project,
        or champions trained on different data sets.
    """
    from mlflow.exceptions import MlflowException

    unknown = sorted(set(names or {}) - set(TASKS))
    if unknown:
        raise StoreError(
            f"model names given for unknown task(s) {', '.join(unknown)}; "
            f"tasks are {', '.join(TASKS)}"
        )
    try:
        defaults = registered_names(project)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    wanted = {t: (names or {}).get(t, defaults[t]) for t in (tasks or TASKS)}
    loaded: dict[Task, LoadedModel] = {}
    try:
        for task, name in wanted.items():
            version = alias_version(client, name, alias)
            if version is None:
                if required:
                    raise StoreError(
                        f"no version of {name} holds the alias {alias!r}; train and promote "
                        "first (`lifecycle train`, `lifecycle promote`)"
                        + ("" if project == DEFAULT_PROJECT else f" with --project {project}")
                    )
                continue
            loaded[task] = load_version(client, task, name, version)
    except MlflowException as exc:
        raise StoreError(str(exc).splitlines()[0]) from exc
    _check_one_project(loaded.values(), project)
    return loaded


def _check_one_project(models: Iterable[LoadedModel], project: str) -> None:
    """Refuse versions of another project, or versions trained on different data sets."""
    models = list(models)
    for m in models:
        if m.record.project != project:
            raise StoreError(
                f"{m.name} v{m.version} belongs to project {m.record.project!r}, not {project!r}"
            )
    datasets = {m.record.dataset for m in models if m.record.dataset is not None}
    if len(datasets) > 1:
        trained = ", ".join(f"{m.name} v{m.version} on {m.record.dataset!r}" for m in models)
        raise StoreError(
            f"the {project} champions were trained on different data sets ({trained}); "
            "promote models of one data set"
        )


def shared_lifecycle(models: Mapping[Task, LoadedModel]) -> LifecycleConfig:
    """Return the lifecycle config all the models were trained with.

    Raises
    ------
    StoreError
        When there are no models, or they were trained with different configs.
    """
    configs = [m.record.lifecycle for m in models.values()]
    if not configs:
        raise StoreError("no model to read a lifecycle config from")
    if any(c != configs[0] for c in configs):
        raise StoreError(
            "the champions were trained with different lifecycle configs; promote "
            "models from one training run"
        )
    return configs[0]


def load_uplift(
    client: MlflowClient, alias: str = CHAMPION, project: str = DEFAULT_PROJECT
) -> tuple[str, Any] | None:
    """Return the project's uplift model version holding ``alias`` and its estimator, or None.

    Raises
    ------
    StoreError
        When the version holding ``alias`` cannot be loaded.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    name = uplift_name(project)
    version = alias_version(client, name, alias)
    if version is None:
        return None
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    except MlflowException as exc:
        raise StoreError(f"{name} v{version}: {str(exc).splitlines()[0]}") from exc
    return version, model.unwrap_python_model().estimator


def champion_lifecycle(
    client: MlflowClient, alias: str = CHAMPION, project: str = DEFAULT_PROJECT
) -> LifecycleConfig | None:
    """Return the lifecycle config of the project's next-stage model holding ``alias``, or None."""
    task = TASKS[0]
    name = registered_names(project)[task]
    version = alias_version(client, name, alias)
    if version is None:
        return None
    return load_version(client, task, name, version).record.lifecycle
