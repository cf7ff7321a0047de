"""Where registered lifecycle models live: their registry names and the default store.

Training registers under these names; serving and batch scoring load from them. Kept free of
MLflow imports so that the command line and the service import it cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

REGISTERED_NAMES: dict[str, str] = {
    "next_stage": "lifecycle-next-stage",
    "churn": "lifecycle-churn",
    "clv": "lifecycle-clv",
}
"""Registered model name of each task."""

UPLIFT_NAME = "lifecycle-uplift"
"""Registered name of the campaign uplift model (optional; used by next-best-action)."""


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
