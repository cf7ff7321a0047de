"""Service settings, read from ``LIFECYCLE_*`` environment variables when a worker starts.

``lifecycle serve`` sets them from its options; with ``bentoml serve`` set them yourself.
MLflow's own ``MLFLOW_TRACKING_URI`` names the model store. Read at start-up (not at
``bentoml build``, nor on import), so one built Bento serves any store, lookup table or key.
:func:`missing_models` checks, before a server starts, that the models it would load are there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class ServeSettings(BaseSettings):
    """Everything the prediction service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_", extra="ignore")

    alias: str = Field("champion", description="Registry alias of the models to serve.")
    project: str = Field(
        "lifecycle",
        description="Project whose models to serve: P-next-stage, P-churn, P-clv, P-uplift "
        "(the default keeps the lifecycle-* names).",
    )
    model_names: dict[str, str] | None = Field(
        None,
        description='Registered name per task as JSON, e.g. {"churn": "my-churn"}; '
        "default: the project's names.",
    )
    lookup: Path | None = Field(
        None, description="Customer lookup table: the Parquet written by `lifecycle score`."
    )
    events: Path | None = Field(
        None, description="Canonical events: build the lookup table from them at start-up."
    )
    cutoff: str | None = Field(
        None, description="Cutoff for LIFECYCLE_EVENTS (default: midnight after the last event)."
    )
    actions: Path | None = Field(None, description="Action catalog YAML (default: shipped).")
    uplift: bool = Field(True, description="Use the registered uplift model when there is one.")
    currency: str = Field("USD", description="Currency of revenue and CLV.")
    max_batch: int = Field(1000, ge=1, description="Most items in one /predict_batch call.")
    batch_threads: int = Field(
        1,
        ge=1,
        description="LightGBM threads for batches of 64+ rows (2 halves a lone 1,000-row batch "
        "on two idle cores; 1 stays predictable under concurrent load).",
    )
    max_body_bytes: int = Field(MIB, ge=1024, description="Largest request body accepted.")
    api_key: SecretStr | None = Field(
        None, description="When set, every API call must carry it (Bearer or X-API-Key)."
    )
    max_cost: int = Field(
        6000,
        ge=1,
        description="Most work one request may ask for, in cost units (about a millisecond of "
        "one core each; see lifecycle.serving.guard.request_cost): above it, 422.",
    )
    max_cost_in_flight: int = Field(
        12000,
        ge=1,
        description="Most work in progress at once in one worker: a request that would go over "
        "it waits outside, with 429 and Retry-After (a request alone is always let in).",
    )
    work_timeout: float = Field(
        8.0,
        gt=0,
        le=10,
        description="Seconds a request's work may run: then it stops, between units of work, "
        "and the answer is 504 (below the service's 10 s traffic timeout).",
    )
    body_timeout: float = Field(
        5.0, gt=0, description="Seconds a request body may take to arrive: then 408."
    )
    trust_proxy: bool = Field(
        False,
        description="Behind a TLS-terminating proxy: believe its X-Forwarded-Proto / Forwarded "
        "(the page's cookie is then Secure) and X-Forwarded-For (the address throttled).",
    )
    auth_attempts: int = Field(
        5, ge=1, description="Wrong keys or sign-ins one address may try per auth_window."
    )
    auth_window: float = Field(
        60.0, gt=0, description="Seconds over which auth_attempts are counted; the 429 lasts it."
    )
    tracking_uri: str | None = Field(
        None, description="MLflow store; default MLFLOW_TRACKING_URI, else ./mlflow.db."
    )
    reload_seconds: float = Field(
        30.0,
        ge=0,
        description="Seconds between checks of which versions hold the alias; a move is "
        "loaded, checked and swapped in without a restart (0: only on POST /reload).",
    )
    reload_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds a new set may take to load and check (in a child process at the "
        "low CPU priority); after that the attempt fails and the old set keeps serving.",
    )
    reload_niceness: int = Field(
        10,
        ge=0,
        le=19,
        description="CPU priority (nice) of the process that loads a new set: 19 uses only "
        "idle CPU (the requests' latency is untouched, but a saturated service may wait long "
        "for the swap); 0 competes equally with the requests.",
    )

    @field_validator("project")
    @classmethod
    def _valid_project(cls, value: str) -> str:
        from lifecycle.models.store import check_project

        return check_project(value)

    def registered_names(self) -> dict[str, str]:
        """Return the registered name of each task served: the project's, or ``model_names``."""
        from lifecycle.models.store import registered_names

        names = {str(task): name for task, name in registered_names(self.project).items()}
        return {**names, **(self.model_names or {})}


def missing_models(settings: ServeSettings) -> str | None:
    """Return why a service with these settings could not load its models, else None.

    The quick checks ``lifecycle serve`` makes before starting a server (a second or two,
    instead of a server that starts and never becomes ready): the store exists, and every
    registered model the service loads has a version holding the alias.

    Parameters
    ----------
    settings
        The service's settings: ``tracking_uri`` (default ``MLFLOW_TRACKING_URI``, else
        ``./mlflow.db``), ``alias``, ``project`` and ``model_names``.

    Returns
    -------
    str or None
        One sentence naming what is missing and what to run, or None when all is there.

    Examples
    --------
    >>> settings = ServeSettings(tracking_uri="sqlite:////nowhere/mlflow.db")
    >>> missing_models(settings).split(";")[0]
    'no MLflow store at /nowhere/mlflow.db'
    """
    from lifecycle.models.store import (
        alias_version,
        missing_store,
        open_store,
        resolve_tracking_uri,
    )

    uri = resolve_tracking_uri(settings.tracking_uri)
    problem = missing_store(uri)
    if problem:
        return problem
    client = open_store(uri)
    names = settings.registered_names()
    missing = [n for n in names.values() if alias_version(client, n, settings.alias) is None]
    if missing:
        return (
            f"no version of {', '.join(missing)} holds the alias {settings.alias!r}; "
            "run `lifecycle promote` first"
        )
    return None


LAUNCH_DIR = "LIFECYCLE_LAUNCH_DIR"
"""The variable naming the folder that relative paths in the settings are read from.

BentoML runs the workers in the Bento's folder (or the project's), not where ``bentoml serve``
was started: the service sets this variable to the folder the server was started from before
the workers start, unless it is set already. Unset (an in-process app), the working directory.
"""


def resolve_paths(settings: ServeSettings, base: Path) -> ServeSettings:
    """Return the settings with every relative path read from ``base``.

    The files (``lookup``, ``events``, ``actions``) and a SQLite model store: ``tracking_uri``,
    else ``MLFLOW_TRACKING_URI``, else ``mlflow.db``, as the rest of the project defaults.

    Parameters
    ----------
    settings
        The settings as read from the environment.
    base
        The folder the server was started from (see :data:`LAUNCH_DIR`).

    Returns
    -------
    ServeSettings
        A copy with absolute paths and an explicit tracking URI.

    Examples
    --------
    >>> given = ServeSettings(lookup="scores.parquet", tracking_uri="sqlite:///mlflow.db")
    >>> resolved = resolve_paths(given, Path("/srv/work"))
    >>> str(resolved.lookup), resolved.tracking_uri
    ('/srv/work/scores.parquet', 'sqlite:////srv/work/mlflow.db')
    """
    uri = _given_uri(settings)
    database = _sqlite_file(uri)
    if database is not None:
        _, sep, query = uri.partition("?")
        uri = f"sqlite:///{_absolute(database, base)}{sep}{query}"
    update: dict[str, Any] = {"tracking_uri": uri}
    for name in ("lookup", "events", "actions"):
        path = getattr(settings, name)
        update[name] = None if path is None else _absolute(path, base)
    return settings.model_copy(update=update)


def missing_files(settings: ServeSettings, base: Path) -> str | None:
    """Return what the settings name that is not there, with where it was looked for.

    Parameters
    ----------
    settings
        The settings as read from the environment (relative paths as given).
    base
        The folder relative paths are read from (see :func:`resolve_paths`).

    Returns
    -------
    str or None
        One sentence per missing file or SQLite store, naming the value given and the path
        looked at; None when everything named is there.

    Examples
    --------
    >>> given = ServeSettings(lookup="scores.parquet", tracking_uri="sqlite:////nowhere/m.db")
    >>> print(missing_files(given, Path("/srv/work")))  # doctest: +NORMALIZE_WHITESPACE
    LIFECYCLE_LOOKUP=scores.parquet: nothing at /srv/work/scores.parquet; tracking URI
    sqlite:////nowhere/m.db: no MLflow store at /nowhere/m.db (relative paths are read from
    /srv/work, the folder the server was started in)
    """
    resolved = resolve_paths(settings, base)
    problems, relative = [], False
    for name in ("lookup", "events", "actions"):
        given, path = getattr(settings, name), getattr(resolved, name)
        if given is not None and not path.exists():
            problems.append(f"LIFECYCLE_{name.upper()}={given}: nothing at {path}")
            relative = relative or not given.expanduser().is_absolute()
    database = _sqlite_file(resolved.tracking_uri or "")
    if database is not None and not database.is_file():
        if settings.tracking_uri:
            label = f"tracking URI {settings.tracking_uri}"
        elif os.environ.get("MLFLOW_TRACKING_URI"):
            label = f"MLFLOW_TRACKING_URI={os.environ['MLFLOW_TRACKING_URI']}"
        else:
            label = "MLFLOW_TRACKING_URI unset (default mlflow.db)"
        problems.append(f"{label}: no MLflow store at {database}")
        written = _sqlite_file(_given_uri(settings))
        relative = relative or (written is not None and not written.is_absolute())
    if not problems:
        return None
    where = f" (relative paths are read from {base}, the folder the server was started in)"
    return "; ".join(problems) + (where if relative else "")


def _given_uri(settings: ServeSettings) -> str:
    """Return the tracking URI given: the setting, else ``MLFLOW_TRACKING_URI``, else mlflow.db."""
    return settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


def _sqlite_file(uri: str) -> Path | None:
    """Return the database file of a ``sqlite:///`` URI as written (maybe relative), or None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _absolute(path: Path, base: Path) -> Path:
    """Return ``path`` read from ``base`` (unchanged when absolute), without resolving links."""
    return Path(os.path.normpath(base / path.expanduser()))
