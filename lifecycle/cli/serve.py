"""``lifecycle serve``: check what the service needs, then run BentoML's server in this process.

The checks (the port is free, :func:`lifecycle.serving.settings.missing_models`: a model store,
a champion of each model; Typer checks the files named) take a second or two and turn the usual
first-run mistakes into a one-line error with exit code 2, instead of a server that starts and
never becomes ready, or BentoML's traceback.

``/metrics`` gets a Prometheus folder of its own (:func:`metrics_dir`): BentoML's default,
``~/bentoml/prometheus_multiproc_dir``, is shared by every BentoML server of the user, which mixes
their counts and wipes the others' files at each start.
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
METRICS_DIR = "LIFECYCLE_METRICS_DIR"
"""The variable naming the Prometheus folder BentoML's server is given (see :func:`metrics_dir`)."""
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


def metrics_dir(port: int, given: Path | None = None) -> Path:
    """Return the Prometheus multiprocess folder of the server on ``port``.

    BentoML empties its folder when a server starts and every worker writes its counters
    there: one folder per service keeps the counts apart and a restart from touching another
    service's files. Default: ``lifecycle-metrics-<port>`` in BentoML's home (``$BENTOML_HOME``,
    else ``~/bentoml``), beside BentoML's shared folder rather than inside it (BentoML deletes
    that one whole).

    Examples
    --------
    >>> metrics_dir(3000, Path("/srv/metrics"))
    PosixPath('/srv/metrics')
    >>> metrics_dir(3001).name
    'lifecycle-metrics-3001'
    """
    if given is not None:
        return given.expanduser().resolve()
    home = Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml").expanduser()
    return home.resolve() / f"lifecycle-metrics-{port}"


def run_bentoml() -> None:
    """Run BentoML's command line (``sys.argv[1:]``) with the folder ``$LIFECYCLE_METRICS_DIR``.

    BentoML has no option nor variable for its Prometheus folder, only its dependency
    container's setting: set it here, in the process that starts the server and its workers.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml_cli.cli import cli

    folder = os.environ.get(METRICS_DIR)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        BentoMLContainer.prometheus_multiproc_dir.set(folder)
    cli(args=sys.argv[1:], prog_name="bentoml")


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
    metrics: Annotated[
        Path | None,
        typer.Option(
            "--metrics-dir",
            help="Prometheus folder of this server's /metrics (emptied at start). Default: "
            "lifecycle-metrics-<port> in BentoML's home, one per service.",
            file_okay=False,
        ),
    ] = None,
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
        METRICS_DIR: str(metrics_dir(port, metrics)),
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
    # BentoML's command line, run through run_bentoml so its Prometheus folder is this one's.
    start = "from lifecycle.cli.serve import run_bentoml; run_bentoml()"
    args = [sys.executable, "-c", start, "serve", SERVICE, "--host", host, "--port", str(port)]
    os.execv(sys.executable, [*args, "--working-dir", str(PROJECT_ROOT)])  # noqa: S606
