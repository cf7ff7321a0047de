"""``lifecycle serve``: check what the service needs, then run BentoML's server in this process.

The checks (a model store, a champion of each model, the files named) take a second or two
and turn the usual first-run mistakes into a one-line error with exit code 2, instead of a
server that starts and never becomes ready.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from training.registry_cli import TrackingUriOpt

SERVICE = "serving.service:LifecycleService"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def serve_command(
    events: Annotated[
        Path | None,
        typer.Option(
            help="Canonical events (Parquet from `simulate` or `validate`): score these "
            "customers at start-up and serve them by id (with --lookup: only for the page's "
            "customer timelines).",
            exists=True,
        ),
    ] = None,
    lookup: Annotated[
        Path | None,
        typer.Option(
            help="Lookup table written by `lifecycle score` (instead of scoring --events).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    cutoff: Annotated[
        str | None,
        typer.Option(help="Cutoff for --events. Default: midnight after the last event."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 3000,
    alias: Annotated[str, typer.Option(help="Registry alias of the models to serve.")] = (
        "champion"
    ),
    actions: Annotated[
        Path | None,
        typer.Option(help="Action catalog YAML. Default: the shipped one.", exists=True),
    ] = None,
    max_batch: Annotated[
        int, typer.Option(help="Most items in one /predict_batch call.", min=1)
    ] = 1000,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Serve predictions over HTTP (BentoML) until stopped with Ctrl-C.

    POST /predict, /predict_batch and /model_info; /readyz turns ready once the champion
    models are loaded and checked and one prediction is done. The API key, when wanted, comes
    from $LIFECYCLE_API_KEY (never from an option, so it stays out of shell history).
    """
    from models.registry import REGISTERED_NAMES, missing_store, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    problem = missing_store(uri)
    if problem:
        raise _fail(problem)
    from serving.settings import ServeSettings

    names = {**REGISTERED_NAMES, **(ServeSettings().model_names or {})}
    missing = _missing_champions(uri, alias, list(names.values()))
    if missing:
        raise _fail(
            f"no version of {', '.join(missing)} holds the alias {alias!r}; "
            "run `lifecycle promote` first"
        )
    env = {
        "MLFLOW_TRACKING_URI": uri,
        "LIFECYCLE_ALIAS": alias,
        "LIFECYCLE_MAX_BATCH": str(max_batch),
    }
    for name, value in (
        ("LIFECYCLE_EVENTS", events),
        ("LIFECYCLE_LOOKUP", lookup),
        ("LIFECYCLE_ACTIONS", actions),
    ):
        if value is not None:
            env[name] = str(Path(value).resolve())
        else:
            os.environ.pop(name, None)
    if cutoff is not None:
        env["LIFECYCLE_CUTOFF"] = cutoff
    else:
        os.environ.pop("LIFECYCLE_CUTOFF", None)
    os.environ.update(env)
    typer.echo(
        f"serving on http://{host}:{port} (models {alias!r} from {uri}; "
        f"{'API key required' if os.environ.get('LIFECYCLE_API_KEY') else 'no API key'})",
        err=True,
    )
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    args = [bentoml, "serve", SERVICE, "--host", host, "--port", str(port)]
    os.execv(bentoml, [*args, "--working-dir", str(PROJECT_ROOT)])  # noqa: S606


def _missing_champions(uri: str, alias: str, names: list[str]) -> list[str]:
    """Return the registered names without a version holding ``alias``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    missing = []
    for name in names:
        try:
            client.get_model_version_by_alias(name, alias)
        except MlflowException:
            missing.append(name)
    return missing


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg="red")
    return typer.Exit(2)
