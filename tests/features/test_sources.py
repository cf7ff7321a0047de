"""One mapping, several sources: order lines, campaign receipts, redemptions and sign-ups."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.features.build import build_features
from lifecycle.features.config import load_config
from lifecycle.features.io import load_events
from lifecycle.features.mapping import SourceMapping, SourcesMapping, load_mapping
from lifecycle.features.validate import SchemaError

NOW = pd.Timestamp("2025-01-01", tz="UTC")

MAPPING = """
sources:
  orders:
    path: raw/orders.csv
    columns: {customer_id: cust, event_ts: ordered_at}
    constants: {event_type: purchase, currency: GBP}
    transactions: {order_id_col: order, quantity_col: qty, unit_price_col: price}
    duplicate_key: [order, product]
  receipts:
    path: raw/receipts.csv
    columns: {customer_id: member, event_ts: sent, campaign_id: campaign}
    constants: {event_type: campaign_exposure, channel: email}
  redemptions:
    path: raw/redemptions.parquet
    columns: {customer_id: member, event_ts: redeemed_at, campaign_id: coupon}
    event_types: {COUPON: offer_redemption}
  signups:
    path: {signups}
    columns: {customer_id: id, event_ts: joined}
    constants: {event_type: signup}
    timezone: Europe/London
"""


def write_log(folder: Path) -> Path:
    """Write four sources (one elsewhere, by absolute path) and the mapping that names them."""
    raw = folder / "raw"
    raw.mkdir()
    (raw / "orders.csv").write_text(
        "order,product,cust,ordered_at,qty,price\n"
        "o1,p1,a,2024-01-05 10:00,2,5.00\n"
        "o1,p2,a,2024-01-05 10:00,1,3.00\n"
        "o1,p2,a,2024-01-05 10:00,1,3.50\n"  # same order and product: a duplicate by the key
        "o2,p1,b,2024-01-06 09:00,1,5.00\n"
        "o3,p1,,2024-01-07 09:00,1,5.00\n"  # no customer: quarantined
    )
    (raw / "receipts.csv").write_text(
        "member,sent,campaign\na,2024-01-01 08:00,SPRING\nb,2024-01-01 08:00,SPRING\n"
        "c,2024-01-01 08:00,SPRING\nc,yesterday,SPRING\n"  # unparsable: quarantined
    )
    pd.DataFrame(
        {
            "member": ["a", "a"],
            "redeemed_at": pd.to_datetime(["2024-01-05 09:59", "2024-01-20 12:00"], utc=True),
            "coupon": ["SPRING", "SPRING"],
            "kind": ["COUPON", "COUPON"],
        }
    ).rename(columns={"kind": "event_type"}).to_parquet(raw / "redemptions.parquet")
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    signups = elsewhere / "signups.csv"
    signups.write_text("id,joined\na,2023-12-31 12:00\nc,2023-12-30 12:00\n")
    mapping = folder / "maps" / "shop.yaml"
    mapping.parent.mkdir()
    # Relative paths are relative to the mapping's folder: ../raw from maps/.
    text = MAPPING.replace("raw/", "../raw/").replace("{signups}", str(signups))
    mapping.write_text(text)
    return mapping


def test_load_mapping_resolves_source_paths_against_its_folder(tmp_path):
    path = write_log(tmp_path)
    mapping = load_mapping(path)
    assert isinstance(mapping, SourcesMapping)
    assert list(mapping.sources) == ["orders", "receipts", "redemptions", "signups"]
    assert mapping.sources["orders"].path == str((tmp_path / "raw" / "orders.csv").resolve())
    assert mapping.sources["signups"].path == str(tmp_path / "elsewhere" / "signups.csv")
    assert mapping.sources["orders"].duplicate_key == ("order", "product")


def test_load_events_combines_every_source_and_reconciles_per_source(tmp_path):
    result = load_events(None, mapping=load_mapping(write_log(tmp_path)), now=NOW)
    events = result.events
    assert events[["customer_id", "event_ts", "event_type"]].astype(str).values.tolist() == [
        ["a", "2023-12-31 12:00:00+00:00", "signup"],
        ["a", "2024-01-01 08:00:00+00:00", "campaign_exposure"],
        ["a", "2024-01-05 09:59:00+00:00", "offer_redemption"],
        ["a", "2024-01-05 10:00:00+00:00", "purchase"],
        ["a", "2024-01-20 12:00:00+00:00", "offer_redemption"],
        ["b", "2024-01-01 08:00:00+00:00", "campaign_exposure"],
        ["b", "2024-01-06 09:00:00+00:00", "purchase"],
        ["c", "2023-12-30 12:00:00+00:00", "signup"],
        ["c", "2024-01-01 08:00:00+00:00", "campaign_exposure"],
    ]
    # o1 keeps its first two lines (p1 2 x 5 + p2 1 x 3); the second p2 line is a duplicate.
    assert events.loc[events["event_type"] == "purchase", "revenue"].tolist() == [13.0, 5.0]
    assert events.loc[events["event_type"] == "campaign_exposure", "channel"].unique().tolist() == [
        "email"
    ]
    assert set(events.loc[events["event_type"] == "offer_redemption", "campaign_id"]) == {"SPRING"}
    assert (result.rows_in, result.rows_accepted, result.rows_quarantined) == (13, 10, 3)
    per_source = result.summary()["sources"]
    assert {k: (v["rows_in"], v["rows_quarantined"]) for k, v in per_source.items()} == {
        "orders": (5, 2),
        "receipts": (4, 1),
        "redemptions": (2, 0),
        "signups": (2, 0),
    }
    for part in per_source.values():
        assert part["rows_in"] == part["rows_accepted"] + part["rows_quarantined"]
    assert result.events_out == sum(v["events_out"] for v in per_source.values()) == 9
    assert result.reasons == {
        "duplicate_row": 1,
        "missing_customer_id": 1,
        "unparsable_timestamp": 1,
    }
    quarantine = result.quarantine
    assert quarantine[["source", "source_row"]].values.tolist() == [
        ["orders", 2],
        ["orders", 4],
        ["receipts", 3],
    ]
    assert quarantine["reason"].tolist() == [
        "duplicate of source_row 1 (key: order, product)",
        "missing customer_id",
        "unparsable event_ts 'yesterday'",
    ]
    assert quarantine.loc[2, "sent"] == "yesterday"  # each source keeps its own raw columns


def test_load_events_sources_are_order_independent(tmp_path):
    mapping = load_mapping(write_log(tmp_path))
    assert isinstance(mapping, SourcesMapping)
    flipped = SourcesMapping(sources=dict(reversed(list(mapping.sources.items()))))
    once = load_events(None, mapping=mapping, now=NOW).events
    again = load_events(None, mapping=flipped, now=NOW).events
    pd.testing.assert_frame_equal(once, again)


def test_load_events_sources_errors_name_the_source(tmp_path):
    path = write_log(tmp_path)
    path.write_text(path.read_text().replace("member, event_ts: sent", "member, event_ts: when"))
    with pytest.raises(SchemaError, match=r"source 'receipts' \(.*receipts\.csv\).*'when'"):
        load_events(None, mapping=load_mapping(path), now=NOW)
    with pytest.raises(ValueError, match="names its own sources"):
        load_events("other.csv", mapping=load_mapping(path), now=NOW)
    with pytest.raises(ValidationError, match="name at least one source"):
        SourcesMapping(sources={})
    with pytest.raises(ValidationError, match="names a column twice"):
        SourceMapping(path="x.csv", duplicate_key=["a", "a"])


def test_redemption_role_reaches_the_features_and_never_leaks(tmp_path):
    result = load_events(None, mapping=load_mapping(write_log(tmp_path)), now=NOW)
    cutoff = pd.Timestamp("2024-01-20 12:00", tz="UTC")  # the second redemption is at the cutoff
    got = build_features(result.events, cutoffs=cutoff, config=load_config()).set_index(
        "customer_id"
    )
    assert got.loc["a", "n_offer_redemptions"] == 1
    assert got.loc["a", "n_offer_redemptions_30d"] == 1
    assert got.loc["a", "offer_redemption_rate"] == 1.0  # one redemption per one offer
    assert got.loc["b", "n_offer_redemptions"] == 0
    assert got.loc["b", "offer_redemption_rate"] == 0.0
    later = build_features(
        result.events, cutoffs=cutoff + pd.Timedelta(microseconds=1), config=load_config()
    ).set_index("customer_id")
    assert later.loc["a", "n_offer_redemptions"] == 2
    assert later.loc["a", "offer_redemption_rate"] == 2.0
    # A redemption is a response, not a purchase: purchases are counted as before.
    assert later.loc["a", "n_purchases"] == 1


def test_redemption_role_follows_the_config(tmp_path):
    config = load_config().model_copy(
        update={
            "features": load_config().features.model_copy(
                update={"redemption_events": ("coupon_used",)}
            ),
            "vocabulary": (*load_config().vocabulary, "coupon_used"),
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a"],
            "event_ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
            "event_type": ["campaign_exposure", "coupon_used", "offer_redemption"],
        }
    )
    got = build_features(events, cutoffs=pd.Timestamp("2024-02-01", tz="UTC"), config=config)
    assert got.loc[0, "n_offer_redemptions"] == 1  # only the configured event type counts


runner = CliRunner()


def test_cli_validate_reads_every_source_of_the_mapping(tmp_path):
    path = write_log(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["validate", "--events", str(path), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "sources"
    assert (summary["rows_in"], summary["rows_accepted"], summary["rows_quarantined"]) == (
        13,
        10,
        3,
    )
    assert summary["sources"]["orders"]["rows_quarantined"] == 2
    assert summary["event_types"]["offer_redemption"] == 2
    # 3 of 13 quarantined (23%), orders 40%, receipts 25%: three loud lines, in JSON and stderr
    assert len(summary["warnings"]) == 3
    assert "warning:" in result.stderr and "of source 'orders'" in result.stderr
    quarantine = pd.read_csv(out / "quarantine.csv")
    assert quarantine["source"].tolist() == ["orders", "orders", "receipts"]
    written = json.loads((out / "summary.json").read_text())
    assert written["warnings"] == summary["warnings"]
    events = pd.read_parquet(out / "events.parquet")
    assert len(events) == 9

    # --mapping may name the same file; the table shows each source.
    same = runner.invoke(
        app, ["validate", "--events", str(path), "--mapping", str(path), "--out", str(out)]
    )
    assert same.exit_code == 0, same.stderr
    assert "rows by source" in same.stdout and "redemptions" in same.stdout


def test_cli_a_sources_mapping_with_another_log_is_a_usage_error(tmp_path):
    path = write_log(tmp_path)
    orders = str(tmp_path / "raw" / "orders.csv")
    out = str(tmp_path / "out")
    result = runner.invoke(
        app, ["validate", "--events", orders, "--mapping", str(path), "--out", out]
    )
    assert result.exit_code == 2
    assert "names its own sources" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_features_reads_a_sources_mapping(tmp_path):
    path = write_log(tmp_path)
    out = tmp_path / "features.parquet"
    result = runner.invoke(
        app,
        ["features", "--events", str(path), "--cutoff", "2024-02-01", "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.stderr
    frame = pd.read_parquet(out).set_index("customer_id")
    assert frame.loc["a", "n_offer_redemptions"] == 2
    assert "warning:" in result.stderr  # readers of the same validation see the alert too
