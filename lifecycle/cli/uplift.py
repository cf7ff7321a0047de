"""``lifecycle uplift``: learn each campaign offer's uplift from randomised campaigns.

Parses the options, calls :func:`lifecycle.training.uplift.learn_uplift` (fit, evaluate, log to
MLflow,
register ``lifecycle-uplift``) and prints one line per offer and a summary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from lifecycle.cli.inputs import check_events
from lifecycle.cli.options import (
    EXIT_USAGE,
    CanonicalEventsOpt,
    DatasetOpt,
    JsonOpt,
    ProjectOpt,
    TrackingUriOpt,
    fail,
)
from lifecycle.cli.output import emit


def uplift(
    events: CanonicalEventsOpt,
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
    project: ProjectOpt = "lifecycle",
    dataset: DatasetOpt = None,
    tracking_uri: TrackingUriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Learn per-offer uplift (two-model learner) from campaigns with a control group.

    Per-customer estimates are calibrated on held-out customers: each offer's observed effect
    in proportion to the chance of buying anyway, plus the learner's estimates shrunk by the
    signal they showed (docs/plan.md, "Calibrated uplift").
    """
    check_events(events)
    from lifecycle.models.store import StoreError
    from lifecycle.training.tracking import quiet_mlflow
    from lifecycle.training.uplift import learn_uplift

    quiet_mlflow()
    began = time.perf_counter()
    try:
        result = learn_uplift(
            events,
            campaigns,
            window_days=window_days,
            max_campaigns=max_campaigns,
            promote=promote,
            tracking_uri=tracking_uri,
            project=project,
            dataset=dataset,
        )
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    except StoreError as exc:  # the champion whose lifecycle config the features follow
        raise fail(str(exc), EXIT_USAGE) from exc
    summary = result.as_dict() | {"seconds": round(time.perf_counter() - began, 1)}
    if not as_json:
        for offer, entry in result.offers.items():
            used = "per-customer estimates" if entry.get("individual") else "the average effect"
            typer.echo(
                f"{offer}: treated {entry['rows_treated']:,}, control {entry['rows_control']:,}, "
                f"observed effect {_signed(entry['observed_ate'])}, held-out Qini "
                f"{_signed(entry['qini'])}: uses {used}"
            )
    emit(
        summary,
        f"registered {result.name} v{result.version}"
        + (" as champion" if result.champion else "")
        + f" from {result.rows:,} targeted customers in {summary['seconds']} s",
        as_json,
    )


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"
