"""``lifecycle uplift``: learn each campaign offer's uplift from randomised campaigns.

Fits :class:`models.uplift.TwoModelUplift` on the sends with a complete outcome window, logs an
MLflow run (per-offer arm sizes, observed effect, held-out Qini) and registers the model as
``lifecycle-uplift``. The prediction service uses the version holding ``champion`` for
next-best-action instead of the catalog's assumed effects, and says so in each answer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from training.registry_cli import TrackingUriOpt


def uplift_command(
    events: Annotated[
        Path, typer.Option(help="Canonical events (Parquet from `simulate` or `validate`).")
    ],
    campaigns: Annotated[
        Path,
        typer.Option(
            help="Randomised campaign assignments (the simulator's campaigns.parquet: "
            "customer_id, campaign_id, offer, sent_ts, group treatment/control).",
            exists=True,
            dir_okay=False,
        ),
    ],
    window_days: Annotated[
        int, typer.Option(help="Days after a send in which a purchase counts.", min=1)
    ] = 30,
    max_campaigns: Annotated[
        int, typer.Option(help="Latest sends to learn from (with complete windows).", min=1)
    ] = 12,
    promote: Annotated[
        bool,
        typer.Option(help="Give the new version the alias champion (the service uses it)."),
    ] = True,
    tracking_uri: TrackingUriOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary.")] = False,
) -> None:
    """Learn per-offer uplift (two-model learner) from campaigns with a control group.

    Per-customer estimates are used only for offers whose held-out Qini is positive; other
    offers use their observed average effect (treated minus control purchase rate).
    """
    import mlflow
    import pandas as pd

    from features.build import feature_columns
    from models.registry import UPLIFT_NAME
    from models.uplift import TwoModelUplift, campaign_frame
    from training import tracking

    tracking.quiet_mlflow()
    began = time.perf_counter()
    client = tracking.connect(tracking_uri)
    config = _champion_lifecycle(client)
    try:
        frame = campaign_frame(
            events, campaigns, config=config, window_days=window_days, max_campaigns=max_campaigns
        )
        model = TwoModelUplift(feature_columns(config)).fit(frame)
    except ValueError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from exc
    summary = model.summary()
    experiment = tracking.experiment_id(client, "lifecycle")
    with mlflow.start_run(experiment_id=experiment, run_name="uplift") as run:
        mlflow.log_params(
            {"window_days": window_days, "max_campaigns": max_campaigns, "rows": len(frame)}
        )
        for offer, entry in summary.items():
            for key in ("observed_ate", "mean_predicted_uplift", "qini"):
                if isinstance(entry.get(key), float):
                    mlflow.log_metric(f"{offer}.{key}", entry[key])
        mlflow.log_dict(summary, "uplift_summary.json")
        example = frame.head(5)[model.feature_names].astype("float64")
        version = tracking.log_estimator(
            model,  # type: ignore[arg-type]  # any estimator with predict_frame
            task="uplift",
            registered_name=UPLIFT_NAME,
            input_example=example,
            tags={"window_days": str(window_days)},
        )
        if promote:
            client.set_registered_model_alias(UPLIFT_NAME, tracking.CHAMPION, version.version)
    result = {
        "run_id": run.info.run_id,
        "registered": {"name": UPLIFT_NAME, "version": str(version.version)},
        "champion": promote,
        "rows": len(frame),
        "sends": int(pd.Series(frame["cutoff"]).nunique()),
        "offers": summary,
        "seconds": round(time.perf_counter() - began, 1),
    }
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    for offer, entry in summary.items():
        used = "per-customer estimates" if entry.get("individual") else "the average effect"
        typer.echo(
            f"{offer}: treated {entry['rows_treated']:,}, control {entry['rows_control']:,}, "
            f"observed effect {_signed(entry['observed_ate'])}, held-out Qini "
            f"{_signed(entry['qini'])}: uses {used}"
        )
    typer.echo(
        f"registered {UPLIFT_NAME} v{version.version}"
        + (" as champion" if promote else "")
        + f" from {len(frame):,} targeted customers in {result['seconds']} s"
    )


def _champion_lifecycle(client: Any) -> Any:
    """Return the lifecycle config the champions were trained with (the default if none).

    Features for the uplift model must be built exactly as the served models' features are.
    """
    from mlflow.exceptions import MlflowException

    from features.config import LifecycleConfig
    from models.registry import REGISTERED_NAMES
    from training.tracking import CHAMPION
    from training.train import run_config

    try:
        version = client.get_model_version_by_alias(REGISTERED_NAMES["next_stage"], CHAMPION)
    except MlflowException:
        return LifecycleConfig()
    return run_config(str(version.run_id)).lifecycle


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"
