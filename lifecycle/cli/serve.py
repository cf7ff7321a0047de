"""``lifecycle serve``: check what the service needs, then run BentoML's server in this process.

The checks (the port is free, :func:`lifecycle.serving.settings.missing_models`: a model store,
a champion of each model; Typer checks the files named) take a second or two and turn the usual
first-run mistakes into a one-line error with exit code 2, instead of a server that starts and
never becomes ready, or BentoML's traceback.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from lifecycle.cli.options import EXIT_USAGE, AliasOpt, ProjectOpt, TrackingUriOpt, fail

SERVICE = "lifecycle.serving.service:LifecycleService"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding ``serving/``: BentoML's working directory."""


def port_taken(host: str, port: int) -> str | None:
    """Return why a server could not listen on ``host:port`` (one sentence), else None.

    Binds a socket the way the server will (``SO_REUSEADDR``, so a port left in TIME_WAIT by a
    stopped server counts as free) and closes it at once.

    Examples
    --------
    >>> with socket.socket() as busy:
    ...     busy.bind(("127.0.0.1", 0))
    ...     busy.listen()
    ...     port = busy.getsockname()[1]
    ...     port_taken("127.0.0.1", port).startswith(f"port {port} on 127.0.0.1 is already")
    True
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return f"cannot listen on {host!r}: {exc.strerror}; give an address with --host"
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (another server?); stop it or "
                    "choose another port with --port"
                )
            return f"cannot listen on {host}:{port}: {exc.strerror}; check --host and --port"
    return None


def serve(
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
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on: 127.0.0.1 is this machine only; 0.0.0.0 every "
            "interface (set $LIFECYCLE_API_KEY then)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 3000,
    alias: AliasOpt = "champion",
    actions: Annotated[
        Path | None,
        typer.Option(help="Action catalog YAML. Default: the shipped one.", exists=True),
    ] = None,
    max_batch: Annotated[
        int, typer.Option(help="Most items in one /predict_batch call.", min=1)
    ] = 1000,
    project: ProjectOpt = "lifecycle",
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Serve predictions over HTTP (BentoML) until stopped with Ctrl-C.

    POST /predict, /predict_batch and /model_info; /readyz turns ready once the champion
    models are loaded and checked and one prediction is done. The API key, when wanted, comes
    from $LIFECYCLE_API_KEY (never from an option, so it stays out of shell history).
    """
    from pydantic import ValidationError

    from lifecycle.models.store import resolve_tracking_uri
    from lifecycle.serving.settings import ServeSettings, missing_models

    uri = resolve_tracking_uri(tracking_uri)
    try:
        settings = ServeSettings(alias=alias, tracking_uri=uri, project=project)
    except ValidationError as exc:  # a LIFECYCLE_* variable of this shell that does not parse
        problems = "; ".join(
            f"LIFECYCLE_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise fail(problems, EXIT_USAGE) from exc
    problem = port_taken(host, port) or missing_models(settings)
    if problem:
        raise fail(problem, EXIT_USAGE)
    env = {
        "MLFLOW_TRACKING_URI": uri,
        "LIFECYCLE_ALIAS": alias,
        "LIFECYCLE_PROJECT": project,
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
        f"serving on http://{host}:{port} (project {project}, models {alias!r} from {uri}; "
        f"{'API key required' if os.environ.get('LIFECYCLE_API_KEY') else 'no API key'})",
        err=True,
    )
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    args = [bentoml, "serve", SERVICE, "--host", host, "--port", str(port)]
    os.execv(bentoml, [*args, "--working-dir", str(PROJECT_ROOT)])  # noqa: S606
