"""The "bring your own log" walk-through (docs/byol.md), end to end on four exports.

A shop's exports (order lines with refunds, campaign receipts, sign-ups, web events) are
written from a simulated log, described by one mapping with ``sources:``, checked, trained
into a project of their own, promoted, scored, and predicted on with MLflow's own loader.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.features.simulate import simulate

MAPPING = """
sources:
  orders:
    path: exports/order_lines.csv
    columns: {customer_id: cust, event_ts: ordered_at}
    constants: {event_type: purchase, currency: GBP}
    timezone: Europe/London
    transactions: {order_id_col: order, quantity_col: qty, unit_price_col: price, refund_prefix: R}
    duplicate_key: [order]
  receipts:
    path: exports/campaign_receipts.csv
    columns: {customer_id: member, event_ts: sent, campaign_id: campaign}
    constants: {event_type: campaign_exposure, channel: email}
    timezone: Europe/London
  signups:
    path: exports/signups.csv
    columns: {customer_id: id, event_ts: joined}
    constants: {event_type: signup}
    timezone: Europe/London
  web:
    path: exports/web_events.csv
    columns: {customer_id: user, event_ts: at, event_type: what}
    event_types: {page_view: visit}
    timezone: Europe/London
"""


def write_exports(sim: Path, folder: Path) -> dict[str, int]:
    """Split a simulated log into the four exports a shop would hand over."""
    events = pd.read_parquet(sim / "events.parquet")
    events["local"] = (
        events["event_ts"].dt.tz_convert("Europe/London").dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    )
    out = folder / "exports"
    out.mkdir(parents=True)
    money = events[events["event_type"].isin(["purchase", "refund"])]
    prefix = np.where(money["event_type"] == "refund", "R", "O")
    pd.DataFrame(
        {
            "order": [f"{p}{i}" for i, p in enumerate(prefix)],
            "cust": money["customer_id"],
            "ordered_at": money["local"],
            "qty": 1,
            "price": money["revenue"].abs(),
        }
    ).to_csv(out / "order_lines.csv", index=False)
    sent = events[events["event_type"] == "campaign_exposure"]
    sent[["customer_id", "local", "campaign_id"]].set_axis(
        ["member", "sent", "campaign"], axis=1
    ).to_csv(out / "campaign_receipts.csv", index=False)
    joined = events[events["event_type"] == "signup"]
    joined[["customer_id", "local"]].set_axis(["id", "joined"], axis=1).to_csv(
        out / "signups.csv", index=False
    )
    web = events[~events["event_type"].isin(["purchase", "refund", "campaign_exposure", "signup"])]
    web = web.assign(what=web["event_type"].replace({"visit": "page_view"}))
    web[["customer_id", "local", "what", "channel"]].set_axis(
        ["user", "at", "what", "channel"], axis=1
    ).to_csv(out / "web_events.csv", index=False)
    (folder / "shop.yaml").write_text(MAPPING, encoding="utf-8")
    return {"events": len(events), "money": len(money)}


def test_a_shops_exports_go_from_mapping_to_predictions(tmp_path: Path) -> None:
    simulate(1500, seed=21, out_dir=tmp_path / "sim", days=1460)
    counts = write_exports(tmp_path / "sim", tmp_path / "shop")
    shop = str(tmp_path / "shop" / "shop.yaml")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runner = CliRunner()

    def run(*args: str) -> dict:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])

    checked = run("check", "--events", shop)
    assert checked["data"]["events"] == counts["events"]  # every row of every export arrived
    assert set(checked["tasks"]) == {"next_stage", "churn", "clv"}

    config = tmp_path / "training.yaml"
    config.write_text(
        "max_train_cutoffs: 2\nreport_customer_split: false\nbaselines: [rfm]\n"
        "shap_sample: 100\ntuning: {trials: 1}\n",
        encoding="utf-8",
    )
    trained = run(
        "train", "--events", shop, "--project", "shop", "--config", str(config),
        "--tracking-uri", uri, "--report-dir", str(tmp_path / "reports"),
    )  # fmt: skip
    assert set(trained["registered"]) == {"shop-next-stage", "shop-churn", "shop-clv"}
    run("promote", "--project", "shop", "--tracking-uri", uri)
    scores = tmp_path / "shop_scores.parquet"
    run("score", "--events", shop, "--project", "shop", "--out", str(scores), "--tracking-uri", uri)

    table = pd.read_parquet(scores)
    assert len(table) == checked["data"]["customers"]
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model("models:/shop-churn@champion")
        churn = model.predict(table)["churn_risk"].to_numpy()
    finally:
        mlflow.set_tracking_uri(None)
    np.testing.assert_allclose(churn, table["churn_risk"].to_numpy(), rtol=1e-12)
    assert np.isfinite(churn[table["n_purchases"].to_numpy() > 0]).all()
    assert np.isnan(churn[table["n_purchases"].to_numpy() == 0]).all()


def test_the_walk_through_mapping_is_the_tested_one() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "byol.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n# shop.yaml\n", 1)[1].split("```", 1)[0]
    for line in MAPPING.strip().splitlines():
        if "event_types" not in line:  # the doc shows the translation as a comment
            assert line.strip() in block, line
