"""Where models live and what they are called, checked without heavy imports.

Project and data set names, and the tracking store (its URI, a local SQLite file that must
exist). The ``lifecycle`` commands check ``--project``, ``--dataset`` and the store while
parsing their options or first thing, before pandas or MLflow is imported (this module imports
only the standard library); :mod:`lifecycle.models.store` re-exports everything here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_PROJECT = "lifecycle"
"""The project of models registered without one: its names are the tasks' registered names."""

PROJECT_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
"""A project name: lowercase letters, digits and single hyphens, starting with a letter."""

MAX_PROJECT_LENGTH = 40

DATASET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A data set name: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit."""


def check_project(project: str) -> str:
    """Return ``project`` when it is a valid project name, else raise naming the rule.

    Raises
    ------
    ValueError
        When the name is empty, too long, or has characters other than lowercase letters,
        digits and single hyphens (it becomes part of registered model names).

    Examples
    --------
    >>> check_project("retail-eu")
    'retail-eu'
    >>> check_project("Retail")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: project 'Retail' must be lowercase letters, digits and single hyphens, ...
    """
    if len(project) > MAX_PROJECT_LENGTH or not PROJECT_PATTERN.fullmatch(project):
        raise ValueError(
            f"project {project!r} must be lowercase letters, digits and single hyphens, "
            f"starting with a letter, at most {MAX_PROJECT_LENGTH} characters (e.g. retail-eu)"
        )
    return project


def check_dataset(dataset: str) -> str:
    """Return ``dataset`` when it is a valid data set name, else raise naming the rule.

    Examples
    --------
    >>> check_dataset("online_retail")
    'online_retail'
    """
    if len(dataset) > 100 or not DATASET_PATTERN.fullmatch(dataset):
        raise ValueError(
            f"data set name {dataset!r} must be letters, digits, '.', '_' or '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return dataset


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
