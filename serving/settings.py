"""Service settings, read from ``LIFECYCLE_*`` environment variables when a worker starts.

``lifecycle serve`` sets them from its options; with ``bentoml serve`` set them yourself.
MLflow's own ``MLFLOW_TRACKING_URI`` names the model store. Read at start-up (not at
``bentoml build``), so one built Bento serves any store, lookup table or key.
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
