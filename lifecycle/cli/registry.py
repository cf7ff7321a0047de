"""The registry moves: ``promote`` and ``rollback``.

Each command parses its options, calls :func:`lifecycle.training.tracking.promote` or
:func:`lifecycle.training.tracking.rollback` and prints their table (or with ``--json`` one JSON
object). MLflow is imported inside the commands, so loading the CLI stays fast. Exit 1 when a
challenger was refused (or a rollback would cross data sets), 2 when the move cannot be done
(no such model, no history, a version of another project, store missing or unreachable); see
:mod:`lifecycle.cli.options`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from lifecycle.cli.inputs import check_store
from lifecycle.cli.options import (
    EXIT_FAILED,
    EXIT_USAGE,
    JsonOpt,
    ProjectOpt,
    TrackingUriOpt,
    fail,
)
from lifecycle.cli.output import emit

if TYPE_CHECKING:
    from mlflow import MlflowClient

ModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help=(
            "Registered model name; repeat for several. Default: every model of the project "
            "(lifecycle-next-stage, lifecycle-churn, lifecycle-clv) that is registered."
        ),
    ),
]


def promote(
    model: ModelOpt = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help=(
                "How much worse the challenger may be: absolute ROC AUC for next_stage and "
                "churn (default 0.005), relative MAE for clv (default 0.02)."
            ),
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help=(
                "Promote finished runs' challengers whatever their score, data set or feature "
                "config (never a killed or unfinished run's)."
            ),
        ),
    ] = False,
    project: ProjectOpt = "lifecycle",
    tracking_uri: TrackingUriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote the challengers of one training run to champion, together, if they are as good.

    Only versions of runs that finished are promoted (a killed run's never, not even with
    --force); runs of this host whose process is gone are first ended as FAILED. Challenger
    and champion are scored on the challenger's evaluation set (ROC AUC, or MAE for CLV). A
    challenger trained on another data set or feature configuration than the champion is
    refused without scoring. The models of one run move together: when one is refused, none
    moves. The previous champions are kept in each model's champion_history, so `rollback`
    can restore them. Exits with 1 when a challenger is refused.
    """
    check_store(tracking_uri)  # before MLflow is imported
    from mlflow.exceptions import MlflowException

    from lifecycle.training.tracking import RegistryError, format_promotions
    from lifecycle.training.tracking import promote as promote_models

    try:
        promotions = promote_models(
            _client(tracking_uri), model or None, project=project, tolerance=tolerance, force=force
        )
    except (RegistryError, MlflowException, OSError) as exc:
        raise fail(_one_line(exc), EXIT_USAGE) from exc
    emit({"promotions": [p.as_dict() for p in promotions]}, format_promotions(promotions), as_json)
    refused = [p for p in promotions if p.status == "refused"]
    if refused:
        why = "; ".join(f"{p.name}: {p.reason}" for p in refused)
        hint = (
            "--force promotes it anyway"
            if all(p.forceable for p in refused)
            else "nothing of that run moved"
        )
        raise fail(f"challenger refused ({why}); {hint}", EXIT_FAILED)


def rollback(
    model: ModelOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help=(
                "Roll back even to versions of another data set or feature config, or of "
                "several runs."
            ),
        ),
    ] = False,
    steps: Annotated[
        int,
        typer.Option(
            min=1,
            help="How many champions to go back: 1 is the previous one, 2 the one before.",
        ),
    ] = 1,
    project: ProjectOpt = "lifecycle",
    tracking_uri: TrackingUriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move champion back to an earlier champion of each model, all models together.

    Default: every model of the project that has an earlier champion, one step back (each
    model keeps its last 20). Exits with 2 when there is none (or too few) to roll back to,
    and with 1 when the earlier champions come from another data set or feature
    configuration, or from several runs (--force overrides).
    """
    check_store(tracking_uri)  # before MLflow is imported
    from mlflow.exceptions import MlflowException

    from lifecycle.training.tracking import LineageError, RegistryError, format_rollbacks
    from lifecycle.training.tracking import rollback as rollback_models

    try:
        rollbacks = rollback_models(
            _client(tracking_uri), model or None, project=project, force=force, steps=steps
        )
    except LineageError as exc:
        raise fail(_one_line(exc), EXIT_FAILED) from exc
    except (RegistryError, MlflowException, OSError) as exc:
        raise fail(_one_line(exc), EXIT_USAGE) from exc
    emit({"rollbacks": [r.as_dict() for r in rollbacks]}, format_rollbacks(rollbacks), as_json)


def _one_line(exc: BaseException) -> str:
    """Return the first line of an error's message (MLflow's can carry SQL and tracebacks)."""
    text = str(getattr(exc, "message", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def _client(tracking_uri: str | None) -> MlflowClient:
    """Connect to the store; a local SQLite file must exist already (no empty one is made)."""
    from lifecycle.models.store import connect, missing_store, resolve_tracking_uri
    from lifecycle.training.tracking import quiet_mlflow

    quiet_mlflow()
    uri = resolve_tracking_uri(tracking_uri)
    problem = missing_store(uri)
    if problem:
        raise fail(problem, EXIT_USAGE)
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    return connect(uri)


def _check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast when a tracking server does not answer (MLflow retries for minutes)."""
    import urllib.error
    import urllib.request

    health = f"{uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout):  # noqa: S310 - http(s) only
            return
    except urllib.error.HTTPError:
        return  # it answered, if only with an error status: the real call will tell more
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise fail(f"cannot reach the MLflow server at {uri}: {reason}", EXIT_USAGE) from exc
