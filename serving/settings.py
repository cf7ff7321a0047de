"""Service settings, read from ``LIFECYCLE_*`` environment variables when a worker starts.

``lifecycle serve`` sets them from its options; with ``bentoml serve`` set them yourself.
MLflow's own ``MLFLOW_TRACKING_URI`` names the model store. Read at start-up (not at
``bentoml build``, nor on import), so one built Bento serves any store, lookup table or key.
:func:`missing_models` checks, before a server starts, that the models it would load are there.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class ServeSettings(BaseSettings):
    """Everything the prediction service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_", extra="ignore")

    alias: str = Field("champion", description="Registry alias of the models to serve.")
    model_names: dict[str, str] | None = Field(
        None,
        description='Registered name per task as JSON, e.g. {"churn": "my-churn"}; '
        "default: lifecycle-next-stage, lifecycle-churn, lifecycle-clv.",
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
    tracking_uri: str | None = Field(
        None, description="MLflow store; default MLFLOW_TRACKING_URI, else ./mlflow.db."
    )


def missing_models(settings: ServeSettings) -> str | None:
    """Return why a service with these settings could not load its models, else None.

    The quick checks ``lifecycle serve`` makes before starting a server (a second or two,
    instead of a server that starts and never becomes ready): the store exists, and every
    registered model the service loads has a version holding the alias.

    Parameters
    ----------
    settings
        The service's settings: ``tracking_uri`` (default ``MLFLOW_TRACKING_URI``, else
        ``./mlflow.db``), ``alias`` and ``model_names``.

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
    from lifecycle.models.tasks import REGISTERED_NAMES

    uri = resolve_tracking_uri(settings.tracking_uri)
    problem = missing_store(uri)
    if problem:
        return problem
    client = open_store(uri)
    names: dict[str, str] = {task: name for task, name in REGISTERED_NAMES.items()}
    names.update(settings.model_names or {})
    missing = [n for n in names.values() if alias_version(client, n, settings.alias) is None]
    if missing:
        return (
            f"no version of {', '.join(missing)} holds the alias {settings.alias!r}; "
            "run `lifecycle promote` first"
        )
    return None
