"""The data commands: ``simulate``, ``validate``, ``features``, ``stages``, ``rfm``, ``fetch-data``.

Each command parses its options, calls the ``features`` library and prints; see
:mod:`lifecycle.cli.options` for the shared options and exit codes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lifecycle.cli.inputs import (
    check_events,
    features_at,
    features_for_report,
    load_config,
    open_events,
    read_mapping,
    warn_validation,
)
from lifecycle.cli.options import (
    EXIT_FAILED,
    EXIT_USAGE,
    ConfigOpt,
    CutoffOpt,
    EventsOpt,
    JsonOpt,
    MappingOpt,
    TableOpt,
    fail,
)
from lifecycle.cli.output import emit, out_console, print_table, progress


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
    from lifecycle.features.simulate import simulate as run_simulation

    began = time.perf_counter()
    with progress("simulating customers", total=customers, enabled=not as_json) as advance:
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
            raise fail(str(exc), EXIT_USAGE) from exc
        except OSError as exc:
            raise fail(f"cannot write to {out}: {exc}", EXIT_FAILED) from exc
    result = summary.as_dict() | {"seconds": round(time.perf_counter() - began, 2)}
    emit(
        result,
        f"simulated {summary.customers:,} customers, {summary.events:,} events "
        f"({summary.start} .. {summary.end}) into {out} in {result['seconds']} s",
        as_json,
    )


def validate(
    events: EventsOpt,
    out: Annotated[Path, typer.Option(help="Folder for the accepted events and the quarantine.")],
    mapping: MappingOpt = None,
    table: TableOpt = None,
    config: ConfigOpt = None,
    memory_limit: Annotated[
        str,
        typer.Option(
            envvar="LIFECYCLE_MEMORY_LIMIT",
            help="Memory cap, e.g. 2GB: CSV and Parquet sources are validated in parts sized "
            "to it, so any file size fits; running out is a one-line error.",
        ),
    ] = "2GB",
    as_json: JsonOpt = False,
) -> None:
    """Validate an event log and split it into accepted events and a quarantine.

    Every problem is collected in one pass (missing columns, empty ids, unparsable or future
    timestamps, unknown event types, non-numeric revenue, duplicates). OUT gets events.parquet
    (canonical, ready for `features`; give it OUT or OUT/events.parquet), quarantine.csv and
    quarantine.parquet (each bad row with its reason) and summary.json.
    Rows in = rows accepted + rows quarantined. Exits with 1 when no row is usable.
    Implausible rows are quarantined too: events before validation.earliest_event (config),
    negative revenue outside refunds, revenue on event types that carry none, control
    characters in ids. CSV and Parquet sources (order lines and several sources too) are
    streamed within --memory-limit; databases are read whole. The outputs are written to
    temporary files and renamed, summary.json last.
    EVENTS may be a mapping YAML with `sources:` (order lines, campaign receipts, redemptions,
    sign-ups, ...): every source is validated and they become one log; the quarantine names
    each row's source. More than 5% of rows quarantined (overall or in one source) prints a
    warning: it usually means a mapping problem.
    """
    check_events(events)
    from lifecycle.features.streaming import OutOfMemory, parse_size, validate_to_folder
    from lifecycle.features.validate import Plausibility, SchemaError

    cfg = load_config(config)
    try:
        parse_size(memory_limit)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    log, loaded = read_mapping(events, mapping)
    rules = Plausibility.from_config(cfg)
    out_of_memory = f"out of memory validating {events} under --memory-limit {memory_limit}"
    with progress("validating", total=None, enabled=not as_json):
        try:
            result, paths = validate_to_folder(
                log,
                out,
                mapping=loaded,
                table=table,
                vocabulary=cfg.vocabulary,
                plausibility=rules,
                memory_limit=memory_limit,
            )
        except OutOfMemory as exc:
            raise fail(str(exc), EXIT_FAILED) from exc
        except MemoryError as exc:  # pyarrow's ArrowMemoryError too
            raise fail(f"{out_of_memory}: raise the limit or free memory", EXIT_FAILED) from exc
        except (SchemaError, FileNotFoundError, ValueError) as exc:
            raise fail(str(exc), EXIT_FAILED) from exc
        except OSError as exc:
            raise fail(f"cannot write to {out}: {exc}", EXIT_FAILED) from exc
    summary = result.summary() | {"out": {k: str(v) for k, v in paths.items()}}
    if not as_json and result.reasons:
        reasons = Table(title="quarantined rows by reason", title_justify="left")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, count in sorted(result.reasons.items(), key=lambda kv: -kv[1]):
            reasons.add_row(reason, f"{count:,}")
        out_console().print(reasons)
    if not as_json and result.sources:
        per_source = Table(title="rows by source", title_justify="left")
        for col in ("source", "rows in", "accepted", "quarantined", "events"):
            per_source.add_column(col, justify="left" if col == "source" else "right")
        for name, part in result.sources.items():
            per_source.add_row(
                name,
                *(
                    f"{n:,}"
                    for n in (
                        part.rows_in,
                        part.rows_accepted,
                        part.rows_quarantined,
                        part.events_out,
                    )
                ),
            )
        out_console().print(per_source)
    warn_validation(result)
    emit(
        summary,
        f"{result.rows_in:,} rows in = {result.rows_accepted:,} accepted + "
        f"{result.rows_quarantined:,} quarantined; {result.events_out:,} events written to {out}",
        as_json,
    )
    if result.rows_accepted == 0:
        raise fail("no usable rows: see the quarantine file for the reasons", EXIT_FAILED)


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
    check_events(events)
    from lifecycle.features.build import monthly_cutoffs, parse_cutoff, write_features

    if bool(cutoff) == bool(cutoffs):
        raise fail("give either --cutoff (one or more) or --cutoffs monthly", EXIT_USAGE)
    if cutoffs is not None and cutoffs != "monthly":
        raise fail(f"--cutoffs must be 'monthly', not {cutoffs!r}", EXIT_USAGE)
    cfg = load_config(config)
    began = time.perf_counter()
    data, counts = open_events(events, mapping, table, cfg)
    try:
        cuts = sorted({parse_cutoff(c) for c in cutoff}) if cutoff else monthly_cutoffs(data)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    if out.is_dir():
        raise fail(f"--out {out} is a folder; give the path of a Parquet file", EXIT_USAGE)
    try:
        frame = features_at(data, cuts, cfg, show_progress=not as_json, memory_limit=memory_limit)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    try:
        write_features(frame, out)
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc}", EXIT_FAILED) from exc
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
    emit(
        summary,
        f"{len(frame):,} feature rows ({summary['customers']:,} customers x {len(cuts)} "
        f"cutoff{'s' if len(cuts) > 1 else ''}, "
        f"{len(frame.columns)} columns) from {counts['events']:,} events in {seconds:.1f} s "
        f"-> {out}",
        as_json,
    )


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
    check_events(events)
    from lifecycle.features.stages import funnel

    cut, frame = features_for_report(events, cutoff, mapping, table, config, as_json)
    table_ = funnel(frame)
    if not as_json:
        print_table(
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
    emit(summary, f"{len(frame):,} customers as of {cut.date()}: {shares}", as_json)


def rfm(
    events: EventsOpt,
    cutoff: CutoffOpt = None,
    mapping: MappingOpt = None,
    table: TableOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    churn_days: Annotated[
        int,
        typer.Option(
            help="Window of the observed churn column: the share of each segment's customers "
            "CHURN_DAYS before the cutoff who bought nothing up to the cutoff.",
            min=1,
        ),
    ] = 90,
) -> None:
    """Print the RFM segment table at a cutoff: size, share, value and real churn per segment.

    Recency, frequency and monetary (net revenue) are scored 1-5 by quintile among the
    customers with a purchase (recency in days, or against each customer's own rhythm with
    `rfm.recency: rhythm`); segments (Champions, Loyal, ..., Hibernating, Lost) come from
    the recency score and the mean of the frequency and monetary scores. "churned" is each
    segment's observed churn: of its customers CHURN_DAYS before the cutoff, the share with
    no purchase since.
    """
    check_events(events)
    import pandas as pd

    from lifecycle.cli.inputs import cutoff_or_default
    from lifecycle.features.rfm import segment_churn, segment_table

    cfg = load_config(config)
    data, _ = open_events(events, mapping, table, cfg)
    cut = cutoff_or_default(data, cutoff)
    start = cut - pd.Timedelta(days=churn_days)
    both = features_at(data, [start, cut], cfg, show_progress=not as_json)
    frame = both[both["cutoff"] == cut]
    churn = segment_churn(both[both["cutoff"] == start], frame).set_index("segment")
    seg = segment_table(frame)
    seg.insert(1, "churned", seg["segment"].map(churn["churn_rate"]))
    if not as_json:
        labels = {
            "churned": f"churned {churn_days}d",
            "net_revenue": "net revenue",
            "avg_net_revenue": "per customer",
            "avg_recency_days": "recency (d)",
            "avg_purchases": "purchases",
        }
        print_table(
            seg.rename(columns=labels),
            f"RFM segments as of {cut.isoformat()} (averages per customer; churned: of the "
            f"segment's customers on {start.date()}, the share with no purchase since)",
            {
                f"churned {churn_days}d": ".1%",
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
                f"churn_rate_{churn_days}d": (
                    None if pd.isna(row["churned"]) else float(row["churned"])
                ),
            }
            for row in seg.to_dict("records")
        },
    }
    top = seg.sort_values("net_revenue", ascending=False).iloc[0]
    emit(
        summary,
        f"{len(frame):,} customers in {int((seg['customers'] > 0).sum())} segments as of "
        f"{cut.date()}; most value in {top['segment']} ({top['net_revenue']:,.0f})",
        as_json,
    )


def fetch_data(
    name: Annotated[str, typer.Argument(help="Data set: cdnow or online_retail.")],
    out: Annotated[Path, typer.Option(help="Folder to write the files into.")] = Path("data"),
    mirror: Annotated[
        str | None,
        typer.Option(
            help=(
                "Folder or base URL holding the same archives (CDNOW_master.zip, "
                "CDNOW_sample.zip, online+retail.zip), e.g. downloaded by hand. "
                "Default: the canonical source."
            ),
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the network.", min=1)] = 60,
    as_json: JsonOpt = False,
) -> None:
    """Download a public real data set in the form the shipped mappings read.

    cdnow: CDNOW_master.txt and CDNOW_sample.txt from Bruce Hardie's dataset page (mappings
    cdnow, cdnow_sample). online_retail: online_retail.csv.gz from the UCI Machine Learning
    Repository, dataset 352 (CC BY 4.0; mapping online_retail; needs openpyxl). Each file is
    checked against its published row count and written atomically. Then, e.g.:
    `lifecycle validate --events OUT/CDNOW_master.txt --mapping cdnow --out OUT/cdnow`.
    """
    from lifecycle.features.datasets import DATASETS, DatasetError, fetch_dataset

    if name not in DATASETS:
        raise fail(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}", EXIT_USAGE)
    with progress(f"fetching {name}", total=None, enabled=not as_json):
        try:
            files = fetch_dataset(name, out, mirror=mirror, timeout=timeout)
        except DatasetError as exc:
            raise fail(str(exc), EXIT_FAILED) from exc
        except OSError as exc:
            raise fail(f"cannot write to {out}: {exc}", EXIT_FAILED) from exc
    summary = {
        "dataset": name,
        "files": {
            f.path.name: {
                "path": str(f.path),
                "rows": f.rows,
                "sha256": f.sha256,
                "matches_reference": f.matches_reference,
            }
            for f in files
        },
    }
    written = ", ".join(f"{f.path.name} ({f.rows:,} rows)" for f in files)
    emit(summary, f"{name}: wrote {written} to {out}", as_json)
