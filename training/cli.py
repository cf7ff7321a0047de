"""The ``lifecycle`` command line: one entry point, a subcommand per job.

Heavy libraries are imported inside the commands, so ``lifecycle --help`` stays fast.
Progress goes to standard error; the last line on standard output is a one-line summary,
or with ``--json`` one JSON object (counts as integers) for scripts.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pandas as pd

    from features.config import LifecycleConfig

app = typer.Typer(
    name="lifecycle",
    help=(
        "Customer lifecycle intelligence: turn a customer event log into stages, features, "
        "RFM segments and predictions (next stage, churn risk, CLV with an interval).\n\n"
        "Typical first run: `lifecycle simulate --customers 20000 --out data/sim`, "
        "`lifecycle train --events data/sim/events.parquet --trials 5`, `lifecycle promote`, "
        "then `lifecycle score --events data/sim/events.parquet --out scores.parquet`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

out_console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the summary as one JSON object instead of tables.")
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Lifecycle YAML (vocabulary, stage rules, windows). Default: the shipped one.",
        exists=True,
        dir_okay=False,
    ),
]
MappingOpt = Annotated[
    str | None,
    typer.Option(
        "--mapping",
        help=(
            "Column mapping for a raw log: a shipped name (cdnow, cdnow_sample, online_retail) "
            "or a YAML file. Not needed for canonical Parquet."
        ),
    ),
]
TableOpt = Annotated[
    str | None,
    typer.Option("--table", help="Table name when --events is a DuckDB file or a SQLAlchemy URL."),
]
EventsOpt = Annotated[
    str,
    typer.Option(
        "--events",
        help=(
            "Event log: canonical Parquet file or folder (from `simulate` or `validate`), or a "
            "raw CSV / Parquet / DuckDB file / SQLAlchemy URL with --mapping and --table."
        ),
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _emit(summary: dict[str, Any], line: str, as_json: bool) -> None:
    """Print the final summary: one JSON object, or one human line."""
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
    else:
        out_console.print(line, highlight=False, soft_wrap=True)


@contextmanager
def _progress(
    label: str, total: int | None, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """Show a progress bar on stderr; yields a callback that advances it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn(label), BarColumn(), MofNCompleteColumn()]
    with Progress(
        *columns, TimeElapsedColumn(), console=err_console, transient=True, disable=not enabled
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda k: bar.advance(task, k)


def _load_config(path: Path | None) -> LifecycleConfig:
    from features.config import load_config

    try:
        return load_config(path)
    except ValueError as exc:
        raise _fail(str(exc)) from exc


def _open_events(
    source: str, mapping: str | None, table: str | None, config: LifecycleConfig
) -> tuple[Any, dict[str, int]]:
    """Return events for feature work and counts.

    Canonical Parquet (from `simulate` or `validate`: the canonical columns and types) is read
    as it is; anything else is validated in memory first and its bad rows are left out.
    """
    path = Path(source)
    if mapping is None and table is None and (path.suffix == ".parquet" or path.is_dir()):
        import pyarrow.parquet as pq

        from features.build import event_files, is_canonical

        try:
            files = event_files(path) if path.exists() else []
        except (FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc)) from exc
        if files and is_canonical(files):
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            return source, {"events": int(rows), "rows_quarantined": 0}
    from features.io import load_events
    from features.mapping import load_mapping
    from features.validate import SchemaError

    try:
        result = load_events(
            source, mapping=load_mapping(mapping), table=table, vocabulary=config.vocabulary
        )
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    if result.rows_accepted == 0:
        raise _fail(f"no usable rows in {source}: run `lifecycle validate` to see why")
    if result.rows_quarantined:
        err_console.print(
            f"[yellow]{result.rows_quarantined:,} of {result.rows_in:,} rows failed validation "
            "and were left out; run `lifecycle validate` to get the quarantine file.[/]"
        )
    return result.events, {
        "events": int(result.events_out),
        "rows_quarantined": int(result.rows_quarantined),
    }


def _default_cutoff(events: Any) -> pd.Timestamp:
    """Midnight UTC after the last event: every event counts, and the date reads cleanly."""
    import pandas as pd

    from features.build import event_time_range

    try:
        _, last = event_time_range(events)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    return last.normalize() + pd.Timedelta(days=1)


def _features_at(
    events: Any,
    cutoffs: list[Any],
    config: LifecycleConfig,
    show_progress: bool = True,
    memory_limit: str | None = None,
) -> pd.DataFrame:
    import duckdb

    from features.build import build_features

    with _progress("features", total=len(cutoffs), enabled=show_progress) as advance:
        try:
            return build_features(
                events, cutoffs=cutoffs, config=config, memory_limit=memory_limit, progress=advance
            )
        except duckdb.Error as exc:
            raise _fail(f"could not read the events: {exc}") from exc


def _features_for_report(
    events: str,
    cutoff: str | None,
    mapping: str | None,
    table: str | None,
    config: Path | None,
    as_json: bool,
) -> tuple[pd.Timestamp, pd.DataFrame]:
    """Open the events and build features at one cutoff (default: after the last event)."""
    from features.build import parse_cutoff

    cfg = _load_config(config)
    data, _ = _open_events(events, mapping, table, cfg)
    try:
        cut = parse_cutoff(cutoff) if cutoff else _default_cutoff(data)
    except ValueError as exc:
        raise _fail(str(exc), code=2) from exc
    return cut, _features_at(data, [cut], cfg, show_progress=not as_json)


def _print_table(frame: pd.DataFrame, title: str, formats: dict[str, str]) -> None:
    from pandas.api.types import is_numeric_dtype

    table = Table(title=title, title_justify="left")
    for col in frame.columns:
        numeric = is_numeric_dtype(frame[col])
        table.add_column(col, justify="right" if numeric else "left", no_wrap=not numeric)
    for row in frame.itertuples(index=False):
        cells = []
        for col, value in zip(frame.columns, row, strict=True):
            fmt = formats.get(col)
            if value is None or (isinstance(value, float) and value != value):
                cells.append("-")
            elif fmt:
                cells.append(format(value, fmt))
            else:
                cells.append(str(value))
        table.add_row(*cells)
    # Piped output defaults to 80 columns; tables are easier to read unwrapped in logs.
    wide = out_console if out_console.width >= 120 else Console(file=sys.stdout, width=120)
    wide.print(table)


@app.command()
def simulate(
    customers: Annotated[
        int, typer.Option(help="Number of customers to simulate.", min=1)
    ] = 20_000,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives identical files.")
    ] = 42,
    start: Annotated[str, typer.Option(help="First day of the simulated period (YYYY-MM-DD).")] = (
        "2022-01-01"
    ),
    days: Annotated[
        int,
        typer.Option(
            help="Days to simulate (4 years leave room for time-honest 365-day CLV labels).",
            min=30,
        ),
    ] = 1460,
    out: Annotated[
        Path, typer.Option(help="Folder for events, customers, campaigns and truth.")
    ] = (Path("data/sim")),
    chunk_size: Annotated[
        int,
        typer.Option(help="Customers simulated per chunk (memory bound; part of the seed).", min=1),
    ] = 50_000,
    as_json: JsonOpt = False,
) -> None:
    """Simulate customer journeys with known ground truth.

    Writes events.parquet (the event log), customers.parquet, campaigns.parquet (randomised
    offers with a control group) and truth.parquet (the generator's true probabilities of
    moving stage and churning, and true expected revenue, per customer and 30-day period).
    """
    from features.simulate import simulate as run_simulation

    began = time.perf_counter()
    with _progress("simulating customers", total=customers, enabled=not as_json) as advance:
        try:
            summary = run_simulation(
                customers,
                seed=seed,
                start=start,
                days=days,
                out_dir=out,
                chunk_size=chunk_size,
                progress=advance,
            )
        except ValueError as exc:
            raise _fail(str(exc), code=2) from exc
        except OSError as exc:
            raise _fail(f"cannot write to {out}: {exc}") from exc
    result = summary.as_dict() | {"seconds": round(time.perf_counter() - began, 2)}
    _emit(
        result,
        f"simulated {summary.customers:,} customers, {summary.events:,} events "
        f"({summary.start} .. {summary.end}) into {out} in {result['seconds']} s",
        as_json,
    )


@app.command()
def validate(
    events: EventsOpt,
    out: Annotated[Path, typer.Option(help="Folder for the accepted events and the quarantine.")],
    mapping: MappingOpt = None,
    table: TableOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate an event log and split it into accepted events and a quarantine.

    Every problem is collected in one pass (missing columns, empty ids, unparsable or future
    timestamps, unknown event types, non-numeric revenue, duplicates). OUT gets events.parquet
    (canonical, ready for `features`; give it OUT or OUT/events.parquet), quarantine.csv and
    quarantine.parquet (each bad row with its reason) and summary.json.
    Rows in = rows accepted + rows quarantined. Exits with 1 when no row is usable.
    """
    from features.io import load_events, write_validation
    from features.mapping import load_mapping
    from features.validate import SchemaError

    cfg = _load_config(config)
    with _progress("validating", total=None, enabled=not as_json):
        try:
            result = load_events(
                events, mapping=load_mapping(mapping), table=table, vocabulary=cfg.vocabulary
            )
        except (SchemaError, FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc)) from exc
        try:
            paths = write_validation(result, out)
        except OSError as exc:
            raise _fail(f"cannot write to {out}: {exc}") from exc
    summary = result.summary() | {"out": {k: str(v) for k, v in paths.items()}}
    if not as_json and result.reasons:
        reasons = Table(title="quarantined rows by reason", title_justify="left")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, count in sorted(result.reasons.items(), key=lambda kv: -kv[1]):
            reasons.add_row(reason, f"{count:,}")
        out_console.print(reasons)
    _emit(
        summary,
        f"{result.rows_in:,} rows in = {result.rows_accepted:,} accepted + "
        f"{result.rows_quarantined:,} quarantined; {result.events_out:,} events written to {out}",
        as_json,
    )
    if result.rows_accepted == 0:
        raise _fail("no usable rows: see the quarantine file for the reasons")


@app.command()
def features(
    events: EventsOpt,
    out: Annotated[Path, typer.Option(help="Parquet file to write the feature table to.")],
    cutoff: Annotated[
        list[str] | None,
        typer.Option(
            help="Cutoff time (UTC unless it has an offset). Repeat it for several cutoffs.",
        ),
    ] = None,
    cutoffs: Annotated[
        str | None,
        typer.Option(help="'monthly': the first of every month within the log (for training)."),
    ] = None,
    mapping: MappingOpt = None,
    table: TableOpt = None,
    config: ConfigOpt = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            help="Cap DuckDB's memory, e.g. 500MB: bigger work spills to disk (slower).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build point-in-time features: one row per customer per cutoff.

    Only events strictly before each cutoff are used (an event exactly at the cutoff is left
    out), and only customers with such an event get a row. Columns: recency, frequency and
    revenue over 7/30/90/365 days and all time, tenure, purchase rhythm, trends, refunds,
    campaign exposures and responses, counts per event type and channel, stage, days in stage,
    RFM scores and segment, status.
    """
    from features.build import monthly_cutoffs, parse_cutoff, write_features

    if bool(cutoff) == bool(cutoffs):
        raise _fail("give either --cutoff (one or more) or --cutoffs monthly", code=2)
    if cutoffs is not None and cutoffs != "monthly":
        raise _fail(f"--cutoffs must be 'monthly', not {cutoffs!r}", code=2)
    cfg = _load_config(config)
    began = time.perf_counter()
    data, counts = _open_events(events, mapping, table, cfg)
    try:
        cuts = sorted({parse_cutoff(c) for c in cutoff}) if cutoff else monthly_cutoffs(data)
    except ValueError as exc:
        raise _fail(str(exc), code=2) from exc
    if out.is_dir():
        raise _fail(f"--out {out} is a folder; give the path of a Parquet file", code=2)
    try:
        frame = _features_at(data, cuts, cfg, show_progress=not as_json, memory_limit=memory_limit)
    except ValueError as exc:
        raise _fail(str(exc), code=2) from exc
    try:
        write_features(frame, out)
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc}") from exc
    seconds = time.perf_counter() - began
    summary = {
        "rows": len(frame),
        "customers": int(frame["customer_id"].nunique()),
        "cutoffs": [c.isoformat() for c in cuts],
        "columns": len(frame.columns),
        "events": counts["events"],
        "rows_quarantined": counts["rows_quarantined"],
        "seconds": round(seconds, 2),
        "out": str(out),
    }
    _emit(
        summary,
        f"{len(frame):,} feature rows ({summary['customers']:,} customers x {len(cuts)} "
        f"cutoff{'s' if len(cuts) > 1 else ''}, "
        f"{len(frame.columns)} columns) from {counts['events']:,} events in {seconds:.1f} s "
        f"-> {out}",
        as_json,
    )


CutoffOpt = Annotated[
    str | None,
    typer.Option(
        help="Cutoff time (UTC unless it has an offset). Default: midnight after the last event."
    ),
]


@app.command()
def stages(
    events: EventsOpt,
    cutoff: CutoffOpt = None,
    mapping: MappingOpt = None,
    table: TableOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the lifecycle funnel at a cutoff.

    Stages: reach (seen) -> acquisition (signed up) -> conversion (one purchase) -> retention
    (two or more) -> loyalty (retention plus a referral, loyalty join or review; for logs
    without such events, the top RFM tier). Status (active / lapsed) is shown beside the stage.
    """
    from features.stages import funnel

    cut, frame = _features_for_report(events, cutoff, mapping, table, config, as_json)
    table_ = funnel(frame)
    if not as_json:
        _print_table(
            table_.rename(columns={"conversion_from_previous": "from previous"}),
            f"lifecycle funnel as of {cut.isoformat()}",
            {
                "customers": ",",
                "reached": ",",
                "active": ",",
                "lapsed": ",",
                "from previous": ".1%",
            },
        )
    summary = {
        "cutoff": cut.isoformat(),
        "customers": len(frame),
        "stages": {
            row["stage"]: {
                key: int(row[key]) for key in ("customers", "reached", "active", "lapsed")
            }
            for row in table_.to_dict("records")
        },
    }
    shares = ", ".join(f"{r['stage']} {int(r['customers']):,}" for r in table_.to_dict("records"))
    _emit(summary, f"{len(frame):,} customers as of {cut.date()}: {shares}", as_json)


@app.command()
def rfm(
    events: EventsOpt,
    cutoff: CutoffOpt = None,
    mapping: MappingOpt = None,
    table: TableOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the RFM segment table at a cutoff: size, share and value per segment.

    Recency, frequency and monetary (net revenue) are scored 1-5 by quintile among the
    customers with a purchase; segments (Champions, Loyal, ..., Hibernating, Lost) come from
    the recency score and the mean of the frequency and monetary scores.
    """
    from features.rfm import segment_table

    cut, frame = _features_for_report(events, cutoff, mapping, table, config, as_json)
    seg = segment_table(frame)
    if not as_json:
        labels = {
            "net_revenue": "net revenue",
            "avg_net_revenue": "per customer",
            "avg_recency_days": "recency (d)",
            "avg_purchases": "purchases",
        }
        _print_table(
            seg.rename(columns=labels),
            f"RFM segments as of {cut.isoformat()} (averages per customer)",
            {
                "customers": ",",
                "share": ".1%",
                "net revenue": ",.0f",
                "per customer": ",.2f",
                "recency (d)": ".0f",
                "purchases": ".2f",
            },
        )
    summary = {
        "cutoff": cut.isoformat(),
        "customers": len(frame),
        "segments": {
            row["segment"]: {
                "customers": int(row["customers"]),
                "net_revenue": float(row["net_revenue"]),
            }
            for row in seg.to_dict("records")
        },
    }
    top = seg.sort_values("net_revenue", ascending=False).iloc[0]
    _emit(
        summary,
        f"{len(frame):,} customers in {int((seg['customers'] > 0).sum())} segments as of "
        f"{cut.date()}; most value in {top['segment']} ({top['net_revenue']:,.0f})",
        as_json,
    )


TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI. Default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here.",
    ),
]
TrainingConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help=(
            "Training YAML (horizons, cutoffs, protocol, tuning; its `lifecycle:` key holds the "
            "lifecycle config or a path to one). Default: built-in defaults that suit the "
            "simulator."
        ),
        exists=True,
        dir_okay=False,
    ),
]


def _load_training_config(path: Path | None, **overrides: Any) -> Any:
    from training.config import TrainingConfig, load_training_config

    try:
        cfg = load_training_config(path)
        if overrides:
            data = cfg.model_dump()
            for dotted, value in overrides.items():
                if value is None:
                    continue
                node = data
                *parents, leaf = dotted.split(".")
                for key in parents:
                    node = node[key]
                node[leaf] = value
            cfg = TrainingConfig.model_validate(data)
    except ValueError as exc:
        raise _fail(str(exc), code=2) from exc
    return cfg


def _quiet_mlflow() -> None:
    from training.tracking import quiet_mlflow

    quiet_mlflow()


def _find_truth(events: str, truth: Path | None) -> pd.DataFrame | None:
    """Return the simulator's truth table: the given file, or truth.parquet beside the events."""
    import pandas as pd

    if truth is None:
        path = Path(events)
        folder = path if path.is_dir() else path.parent
        candidate = folder / "truth.parquet"
        if not candidate.exists():
            return None
        truth = candidate
    return pd.read_parquet(truth)


def _print_task_metrics(summary: dict[str, Any]) -> None:
    from training.report import metrics_table

    for task, block in summary["tasks"].items():
        frame = metrics_table(summary, task).reset_index()
        if task == "clv":
            cols = ["model", "mae", "rmse", "spearman", "normalized_gini", "total_bias"]
            cols += [c for c in ("coverage_p10_p90",) if c in frame.columns]
        else:
            cols = ["model", "roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10"]
        cuts = block["cutoffs"]
        registered = block.get("registered", {})
        version = (
            f", registered {registered['name']} v{registered['version']}" if registered else ""
        )
        _print_table(
            frame[[c for c in cols if c in frame.columns]],
            f"{task} ({block['horizon_days']} d, {block['protocol']} protocol, evaluated at "
            f"{cuts['eval'][:10]}, {block['rows']['eval']:,} customers{version})",
            {c: ".4f" for c in cols if c != "model"},
        )


@app.command()
def train(
    events: EventsOpt,
    config: TrainingConfigOpt = None,
    trials: Annotated[
        int | None, typer.Option(help="Optuna trials per model (overrides the config).", min=0)
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Optuna time budget per model in seconds (overrides the config)."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL shared by several workers (default: in memory)."),
    ] = None,
    tuning_max_rows: Annotated[
        int | None,
        typer.Option(
            help="Tune on a random sample of at most N training rows, then fit on all "
            "(overrides the config; default: every row).",
            min=1,
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (overrides the config).")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "lifecycle",
    truth: Annotated[
        Path | None,
        typer.Option(
            help="Simulator truth.parquet for the oracle (default: beside --events, if there).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(help="Also keep the HTML report, plots and model cards in DIR/<run id>/."),
    ] = Path("reports"),
    mapping: MappingOpt = None,
    table: TableOpt = None,
    tracking_uri: TrackingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train, calibrate, evaluate and register the next-stage, churn and CLV models.

    Builds features at every cutoff, labels from the window after each, tunes LightGBM with
    Optuna on a later cutoff, calibrates there, and reports on the last complete cutoff
    against RFM, last-period, BG/NBD (and, on simulated data, the oracle). Logs one MLflow run
    (params, metrics, plots, HTML report, model cards, data fingerprint) and registers
    lifecycle-next-stage, lifecycle-churn and lifecycle-clv with the alias `challenger`.
    """
    from training.labels import IncompleteLabelWindow
    from training.splits import SplitError
    from training.train import train_and_log

    _quiet_mlflow()

    cfg = _load_training_config(
        config,
        **{
            "tuning.trials": trials,
            "tuning.timeout_seconds": timeout,
            "tuning.storage": storage,
            "tuning.max_rows": tuning_max_rows,
            "seed": seed,
        },
    )
    data, counts = _open_events(events, mapping, table, cfg.lifecycle)
    truth_table = _find_truth(events, truth) if mapping is None else None
    began = time.perf_counter()
    with _progress("training", total=None, enabled=not as_json) as _advance:
        try:
            summary = train_and_log(
                data,
                config=cfg,
                truth=truth_table,
                tracking_uri=tracking_uri,
                experiment=experiment,
                report_dir=report_dir,
                progress=None if as_json else lambda m: err_console.print(f"[dim]{m}[/]"),
            )
        except (SplitError, IncompleteLabelWindow) as exc:
            raise _fail(str(exc), code=2) from exc
        except RuntimeError as exc:  # e.g. no Optuna trial finished within the time budget
            raise _fail(str(exc), code=1) from exc
    seconds = time.perf_counter() - began
    if not as_json:
        _print_task_metrics(summary)
    registered = {
        block["registered"]["name"]: block["registered"]["version"]
        for block in summary["tasks"].values()
    }
    out = {
        "run_id": summary["run"]["run_id"],
        "experiment": experiment,
        "registered": registered,
        "events": counts["events"],
        "rows_quarantined": counts["rows_quarantined"],
        "report": summary.get("report"),
        "seconds": round(seconds, 1),
    }
    _emit(
        out,
        f"run {out['run_id']}: registered "
        + ", ".join(f"{k} v{v}" for k, v in registered.items())
        + f" as challenger in {seconds:.0f} s"
        + (f"; report {out['report']}" if out["report"] else ""),
        as_json,
    )


@app.command()
def evaluate(
    run: Annotated[str, typer.Option("--run", help="MLflow run id of a training run.")],
    tracking_uri: TrackingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a training run's evaluation: each model against its baselines, per task."""
    import mlflow

    from training.train import load_run_summary

    _quiet_mlflow()

    try:
        summary = load_run_summary(run, tracking_uri)
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise _fail(f"cannot read run {run}: {str(exc).splitlines()[0]}", code=2) from exc
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
        return
    _print_task_metrics(summary)
    tasks = ", ".join(summary["tasks"])
    _emit(summary, f"run {run}: {tasks}; report.html is in the run's artifacts", as_json)


@app.command()
def score(
    events: EventsOpt,
    out: Annotated[Path, typer.Option(help="Parquet file for the scores.")],
    cutoff: CutoffOpt = None,
    alias: Annotated[str, typer.Option(help="Registry alias of the models to use.")] = "champion",
    config: TrainingConfigOpt = None,
    mapping: MappingOpt = None,
    table: TableOpt = None,
    tracking_uri: TrackingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score every customer at a cutoff with the champion models (batch scoring).

    Features are built with the lifecycle config each model was trained with (its run's
    config.yaml) unless --config is given; tasks without a champion are left out.

    Writes one row per customer: stage, status, RFM scores and segment, next-stage
    probability, churn risk, CLV with P10-P90, the model versions that made them, and every
    feature (the file is the prediction service's customer lookup table).
    """
    import mlflow

    from features.build import parse_cutoff
    from training.train import score_customers

    _quiet_mlflow()

    from features.config import LifecycleConfig

    cfg = _load_training_config(config) if config else None
    data, counts = _open_events(events, mapping, table, cfg.lifecycle if cfg else LifecycleConfig())
    try:
        cut = parse_cutoff(cutoff) if cutoff else _default_cutoff(data)
    except ValueError as exc:
        raise _fail(str(exc), code=2) from exc
    began = time.perf_counter()
    try:
        scores = score_customers(
            data, cutoff=cut, config=cfg, tracking_uri=tracking_uri, alias=alias
        )
    except LookupError as exc:
        raise _fail(
            f"{exc}; train and promote first (`lifecycle train`, `lifecycle promote`)", code=2
        ) from exc
    except mlflow.exceptions.MlflowException as exc:
        raise _fail(str(exc).splitlines()[0], code=2) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(out, index=False)
    seconds = time.perf_counter() - began
    summary = {
        "customers": len(scores),
        "cutoff": cut.isoformat(),
        "model_versions": json.loads(scores["model_versions"].iloc[0]) if len(scores) else {},
        "events": counts["events"],
        "seconds": round(seconds, 2),
        "out": str(out),
    }
    _emit(
        summary,
        f"scored {len(scores):,} customers as of {cut.date()} with "
        + ", ".join(f"{k} v{v}" for k, v in summary["model_versions"].items())
        + f" in {seconds:.1f} s -> {out}",
        as_json,
    )


def _register_registry_commands() -> None:
    """Add ``promote``, ``rollback``, ``uplift`` and ``serve`` (their own modules)."""
    from training.registry_cli import promote_command, rollback_command
    from training.serve_cli import serve_command
    from training.uplift_cli import uplift_command

    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
    app.command("uplift")(uplift_command)
    app.command("serve")(serve_command)


_register_registry_commands()


def main() -> None:
    """Run the CLI (used by ``python -m training.cli``)."""
    app()


if __name__ == "__main__":
    main()
