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
  :func:`load_uplift`), with the estimator's task and signature checked against the record.

Nothing happens on import; MLflow is imported only by the functions that need it, so the
command line and the service import this module cheaply.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from lifecycle.features.config import LifecycleConfig
from lifecycle.models.tasks import SPECS, TASKS, Task, spec

if TYPE_CHECKING:
    from mlflow import MlflowClient

UPLIFT_NAME = "lifecycle-uplift"
"""Registered name of the campaign uplift model (optional; used by next-best-action)."""

CHAMPION = "champion"
CHALLENGER = "challenger"

RECORD_KEY = "lifecycle_record"
"""Key of the :class:`ModelRecord` in a logged model's MLmodel ``metadata``."""

RECORD_VERSION = 1
"""Schema version of :class:`ModelRecord`; a record of another version is refused on load."""


class StoreError(RuntimeError):
    """A model cannot be loaded from the store: no store, no version, or one that does not fit."""


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


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Return the tracking URI: ``uri``, else ``$MLFLOW_TRACKING_URI``, else local SQLite.

    Parameters
    ----------
    uri
        Explicit tracking URI (a server ``http://...``, a database URL, ...).

    Returns
    -------
    str
        The URI; the default is ``sqlite:///<absolute cwd>/mlflow.db``.

    Examples
    --------
    >>> resolve_tracking_uri("http://mlflow:5000")
    'http://mlflow:5000'
    """
    if uri:
        return uri
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return from_env
    return f"sqlite:///{Path.cwd().absolute() / 'mlflow.db'}"


def sqlite_database(uri: str) -> Path | None:
    """Return the database file of a ``sqlite:///`` URI (absolute), or None for other URIs.

    Examples
    --------
    >>> sqlite_database("sqlite:////srv/mlflow.db")
    PosixPath('/srv/mlflow.db')
    >>> sqlite_database("http://mlflow:5000") is None
    True
    """
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).absolute()


def missing_store(uri: str) -> str | None:
    """Return why a store cannot be read (a local SQLite file that does not exist), else None.

    Reading a missing SQLite file would make MLflow create an empty store instead of failing.

    Examples
    --------
    >>> missing_store("sqlite:////nowhere/mlflow.db").split(";")[0]
    'no MLflow store at /nowhere/mlflow.db'
    """
    database = sqlite_database(uri)
    if database is None or database.is_file():
        return None
    return (
        f"no MLflow store at {database}; train and promote first "
        "(`lifecycle train`, `lifecycle promote`) or point MLFLOW_TRACKING_URI at one"
    )


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


def open_store(uri: str | None = None) -> MlflowClient:
    """Open an existing store for reading models (refusing a SQLite file that is missing).

    Unlike :func:`connect` it writes nothing (no lock file, no change of journal mode), so a
    service can read a store mounted read-only.

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
    doubles = {str(t) for t in schema.input_types()}
    if doubles != {"double"} and doubles != {"DataType.double"}:
        raise StoreError(f"{where}: signature inputs must all be double")


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
    names: Mapping[str, str] | None = None,
    tasks: Sequence[Task] | None = None,
    required: bool = True,
) -> dict[Task, LoadedModel]:
    """Load the versions holding ``alias``, one per task, by version number.

    Parameters
    ----------
    client
        A client of the store.
    alias
        Registry alias to resolve (``champion`` by default).
    names
        Registered name per task, overriding :attr:`TaskSpec.registered_name`.
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
        For an unknown task in ``names``, a missing version (when ``required``), or a
        version that does not load or fit (see :func:`load_version`).
    """
    from mlflow.exceptions import MlflowException

    unknown = sorted(set(names or {}) - set(TASKS))
    if unknown:
        raise StoreError(
            f"model names given for unknown task(s) {', '.join(unknown)}; "
            f"tasks are {', '.join(TASKS)}"
        )
    wanted = {t: (names or {}).get(t, SPECS[t].registered_name) for t in (tasks or TASKS)}
    loaded: dict[Task, LoadedModel] = {}
    try:
        for task, name in wanted.items():
            version = alias_version(client, name, alias)
            if version is None:
                if required:
                    raise StoreError(
                        f"no version of {name} holds the alias {alias!r}; train and promote "
                        "first (`lifecycle train`, `lifecycle promote`)"
                    )
                continue
            loaded[task] = load_version(client, task, name, version)
    except MlflowException as exc:
        raise StoreError(str(exc).splitlines()[0]) from exc
    return loaded


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


def load_uplift(client: MlflowClient, alias: str = CHAMPION) -> tuple[str, Any] | None:
    """Return the uplift model version holding ``alias`` and its estimator, or None.

    Raises
    ------
    StoreError
        When the version holding ``alias`` cannot be loaded.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    version = alias_version(client, UPLIFT_NAME, alias)
    if version is None:
        return None
    try:
        model = mlflow.pyfunc.load_model(f"models:/{UPLIFT_NAME}/{version}")
    except MlflowException as exc:
        raise StoreError(f"{UPLIFT_NAME} v{version}: {str(exc).splitlines()[0]}") from exc
    return version, model.unwrap_python_model().estimator


def champion_lifecycle(client: MlflowClient, alias: str = CHAMPION) -> LifecycleConfig | None:
    """Return the lifecycle config of the next-stage model holding ``alias``, or None."""
    task = TASKS[0]
    name = spec(task).registered_name
    version = alias_version(client, name, alias)
    if version is None:
        return None
    return load_version(client, task, name, version).record.lifecycle
