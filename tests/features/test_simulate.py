"""The journey simulator: determinism, the event contract, exact stages and a truth that is true."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lifecycle.features.config import FeatureSettings
from lifecycle.features.schema import DEFAULT_VOCABULARY, EVENT_SCHEMA, STAGES
from lifecycle.features.simulate import (
    ACQUISITION_CHANNELS,
    CAMPAIGN_SCHEMA,
    CAMPAIGN_TARGETING_PROBABILITY,
    CAMPAIGN_TREATMENT_PROBABILITY,
    CUSTOMER_TABLE_SCHEMA,
    TRUTH_SCHEMA,
    SimulationSummary,
    simulate,
)

FILES = ("events", "customers", "campaigns", "truth")
START = pd.Timestamp("2024-01-01", tz="UTC")
DAYS = 730
END = START + pd.Timedelta(days=DAYS)
LOYALTY_EVENTS = ("referral", "loyalty_join", "review")
ACTIVITY_EVENTS = ("visit", "app_open", "email_open", "add_to_cart")
STAGE_CODE = {name: code for code, name in enumerate(STAGES)}


def read(out: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in FILES}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stage_at(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Stage code per customer from the events strictly before ``as_of`` (the stage rules)."""
    past = events[events["event_ts"] < as_of]
    flags = (
        pd.DataFrame(
            {
                "customer_id": past["customer_id"],
                "purchases": past["event_type"].eq("purchase"),
                "signup": past["event_type"].eq("signup"),
                "advocacy": past["event_type"].isin(LOYALTY_EVENTS),
            }
        )
        .groupby("customer_id")
        .sum()
    )
    code = np.select(
        [
            (flags["purchases"] >= 2) & (flags["advocacy"] > 0),
            flags["purchases"] >= 2,
            flags["purchases"] == 1,
            flags["signup"] > 0,
        ],
        [4, 3, 2, 1],
        default=0,
    )
    return pd.Series(code, index=flags.index)


def window_outcomes(events: pd.DataFrame, as_of: pd.Timestamp, days: int) -> pd.DataFrame:
    """Purchases and net revenue per customer in ``[as_of, as_of + days)``."""
    inside = events[
        (events["event_ts"] >= as_of) & (events["event_ts"] < as_of + pd.Timedelta(days=days))
    ]
    return (
        inside.assign(purchases=inside["event_type"].eq("purchase"))
        .groupby("customer_id")[["purchases", "revenue"]]
        .sum()
    )


def realised(truth: pd.DataFrame, events: pd.DataFrame, shift_days: int = 0) -> pd.DataFrame:
    """Each truth row with its realised outcomes, where the horizon ends by ``END``.

    ``shift_days`` lengthens every horizon: a deliberate off-by-one-step error for the power check.
    """
    rows = []
    for as_of, group in truth.groupby("as_of"):
        ids = group["customer_id"]
        frame = group.copy()
        now = stage_at(events, as_of).reindex(ids).to_numpy()
        assert not np.isnan(now).any(), "every customer in the truth has an event before as_of"
        frame["stage_from_events"] = now
        if as_of + pd.Timedelta(days=30 + shift_days) <= END:
            later = stage_at(events, as_of + pd.Timedelta(days=30 + shift_days))
            frame["rose"] = (later.reindex(ids).to_numpy() > now).astype(float)
        for days in (30, 90, 365):
            horizon = days + shift_days
            if as_of + pd.Timedelta(days=horizon) <= END:
                out = window_outcomes(events, as_of, horizon).reindex(ids, fill_value=0)
                frame[f"no_purchase_{days}d"] = (out["purchases"].to_numpy() == 0).astype(float)
                frame[f"revenue_{days}d"] = out["revenue"].to_numpy()
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def calibration_gaps(
    frame: pd.DataFrame, predicted: str, outcome: str, *, z: float = 4.0
) -> list[str]:
    """Where realised and predicted means differ by more than ``z`` standard errors.

    Checked overall and within each decile of the prediction; standard errors are clustered by
    customer (one customer's rows at successive dates are not independent).
    """
    data = frame.loc[frame[outcome].notna() & frame[predicted].notna()]
    decile = pd.qcut(data[predicted].rank(method="first"), 10, labels=False)
    gaps = []
    for name, part in [("all", data), *((f"decile {d}", g) for d, g in data.groupby(decile))]:
        diff = part[outcome] - part[predicted]
        centred = diff - diff.mean()
        se = float(np.sqrt((centred.groupby(part["customer_id"]).sum() ** 2).sum())) / len(part)
        se = max(se, 1e-3 * max(1.0, float(part[outcome].abs().mean())))
        if abs(diff.mean()) > z * se:
            gaps.append(
                f"{predicted} {name}: predicted {part[predicted].mean():.4f}, "
                f"realised {part[outcome].mean():.4f}, se {se:.4f}"
            )
    return gaps


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("sim")
    simulate(12_000, seed=7, start="2024-01-01", days=DAYS, out_dir=out, chunk_size=4_000)
    return read(out)


@pytest.fixture(scope="module")
def outcomes(sim: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return realised(sim["truth"], sim["events"])


def test_simulate_same_seed_gives_identical_files(tmp_path: Path) -> None:
    seen = []
    calls: list[int] = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        summary = simulate(
            1_500,
            seed=seed,
            days=200,
            out_dir=tmp_path / name,
            chunk_size=600,
            progress=calls.append,
        )
        seen.append({f: sha256(Path(summary.files[f])) for f in FILES})
    assert seen[0] == seen[1]
    assert all(seen[0][f] != seen[2][f] for f in FILES)
    assert calls == [600, 600, 300] * 3
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        f"{f}.parquet" for f in FILES
    )


def test_simulate_summary_matches_files(tmp_path: Path) -> None:
    summary = simulate(300, seed=1, start="2023-05-02", days=95, out_dir=tmp_path)
    assert isinstance(summary, SimulationSummary)
    data = json.loads(json.dumps(summary.as_dict()))
    assert data["start"] == "2023-05-02" and data["end"] == "2023-08-05"
    frames = read(tmp_path)
    assert data["customers"] == len(frames["customers"]) == 300
    assert data["events"] == len(frames["events"])
    assert data["campaign_rows"] == len(frames["campaigns"])
    assert data["truth_rows"] == len(frames["truth"])
    assert sorted(frames["truth"]["as_of"].dt.strftime("%Y-%m-%d").unique()) == [
        "2023-06-01",
        "2023-07-01",
        "2023-07-31",
    ]


def test_simulate_rejects_bad_arguments(tmp_path: Path) -> None:
    for kwargs in ({"n_customers": 0}, {"days": 0}, {"chunk_size": 0}, {"seed": -1}):
        args: dict[str, Any] = {"n_customers": 10, "seed": 1, "out_dir": tmp_path} | kwargs
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            simulate(**args)
    assert not list(tmp_path.iterdir())


def test_simulate_files_have_the_declared_schemas(tmp_path: Path) -> None:
    summary = simulate(200, seed=2, days=120, out_dir=tmp_path)
    schemas = {
        "events": EVENT_SCHEMA,
        "customers": CUSTOMER_TABLE_SCHEMA,
        "campaigns": CAMPAIGN_SCHEMA,
        "truth": TRUTH_SCHEMA,
    }
    for name, schema in schemas.items():
        assert pq.read_schema(summary.files[name]).equals(schema), name


def test_simulate_events_follow_the_contract(sim: dict[str, pd.DataFrame]) -> None:
    events, customers = sim["events"], sim["customers"]
    assert list(events.columns) == EVENT_SCHEMA.names
    assert customers["customer_id"].str.fullmatch(r"C\d{7}").all()
    assert customers["customer_id"].tolist() == [f"C{i:07d}" for i in range(1, 12_001)]
    assert set(events["event_type"]) <= set(DEFAULT_VOCABULARY)
    assert set(events["channel"].dropna()) <= set(FeatureSettings().channels)
    assert set(ACQUISITION_CHANNELS) == set(FeatureSettings().channels)
    assert events["channel"].notna().all()
    key = events[["customer_id", "event_ts", "event_type"]]
    assert key.equals(key.sort_values(list(key.columns), kind="stable").reset_index(drop=True))

    merged = events.merge(customers, on="customer_id", validate="many_to_one")
    assert (merged["event_ts"] >= merged["arrival_ts"]).all()
    assert (events["event_ts"] >= START).all() and (events["event_ts"] < END).all()
    first = merged.groupby("customer_id").head(1)
    assert (first["event_ts"] == first["arrival_ts"]).all()
    assert set(first["event_type"]) <= {"visit", "ad_click", "app_install"}

    kind = events["event_type"]
    assert (events.loc[kind == "purchase", "revenue"] > 0).all()
    assert (events.loc[kind == "refund", "revenue"] < 0).all()
    assert events.loc[~kind.isin(["purchase", "refund"]), "revenue"].isna().all()
    assert events["currency"].eq("USD").eq(events["revenue"].notna()).all()
    assert set(kind[events["campaign_id"].notna()]) == {"campaign_exposure", "purchase"}
    assert events.loc[kind == "campaign_exposure", "campaign_id"].notna().all()
    assert events["campaign_id"].dropna().str.fullmatch(r"CMP-\d{4}").all()

    signups = events[kind == "signup"].groupby("customer_id")["event_ts"].agg(["min", "size"])
    assert (signups["size"] == 1).all()
    signed = customers.set_index("customer_id")["signup_ts"]
    assert signed.dropna().sort_index().equals(signups["min"].rename("signup_ts").sort_index())
    buys = merged[kind.to_numpy() == "purchase"]
    assert (buys["event_ts"] > buys["signup_ts"]).all()
    assert events[kind == "loyalty_join"].groupby("customer_id").size().max() == 1
    per_customer = len(events) / len(customers)
    assert 20 <= per_customer <= 40


def test_simulate_referrers_had_a_referral_event_before_arrival(
    sim: dict[str, pd.DataFrame],
) -> None:
    events, customers = sim["events"], sim["customers"]
    referred = customers[customers["referrer_id"].notna()]
    assert len(referred) > 20
    assert (referred["acquisition_channel"] == "referral").all()
    referrals = events[events["event_type"] == "referral"]
    for referrer, group in referred.groupby("referrer_id"):
        times = np.sort(referrals.loc[referrals["customer_id"] == referrer, "event_ts"].to_numpy())
        arrivals = np.sort(group["arrival_ts"].to_numpy())
        # Each referral event is used at most once: the k-th referred arrival needs k events.
        assert (
            np.searchsorted(times, arrivals, side="left") >= np.arange(1, len(arrivals) + 1)
        ).all()


def test_simulate_truth_rows_cover_arrived_customers(sim: dict[str, pd.DataFrame]) -> None:
    truth, customers = sim["truth"], sim["customers"]
    as_of = START + pd.to_timedelta(30 * np.arange(1, 25), unit="D")
    assert sorted(truth["as_of"].unique()) == list(as_of)
    grid = customers[["customer_id", "arrival_ts"]].merge(
        pd.Series(as_of, name="as_of"), how="cross"
    )
    grid = grid[grid["arrival_ts"] < grid["as_of"]]
    assert len(grid) == len(truth)
    keys = ["customer_id", "as_of"]
    assert truth[keys].equals(grid[keys].sort_values(keys).reset_index(drop=True))
    probabilities = truth[["p_next_stage_30d", "p_churn_30d", "p_churn_90d"]]
    assert ((probabilities >= 0) & (probabilities <= 1) | probabilities.isna()).all().all()
    assert (truth.loc[truth["stage"] == "loyalty", "p_next_stage_30d"] == 0).all()
    buyers = truth.dropna(subset=["p_churn_90d"])
    assert (buyers["p_churn_90d"] <= buyers["p_churn_30d"] + 1e-12).all()
    assert (truth["expected_revenue_365d"] >= truth["expected_revenue_90d"] - 1e-9).all()


def test_simulate_truth_stage_matches_the_stage_rules(outcomes: pd.DataFrame) -> None:
    assert (outcomes["stage"].map(STAGE_CODE) == outcomes["stage_from_events"]).all()
    buyers = outcomes["stage"].isin(["conversion", "retention", "loyalty"])
    assert outcomes["p_churn_90d"].notna().eq(buyers).all()
    assert outcomes["p_churn_30d"].notna().eq(buyers).all()
    assert set(outcomes["stage"]) == set(STAGES)


@pytest.mark.parametrize(
    ("predicted", "outcome"),
    [
        ("p_next_stage_30d", "rose"),
        ("p_churn_30d", "no_purchase_30d"),
        ("p_churn_90d", "no_purchase_90d"),
        ("expected_revenue_30d", "revenue_30d"),
        ("expected_revenue_90d", "revenue_90d"),
        ("expected_revenue_365d", "revenue_365d"),
    ],
)
def test_simulate_truth_matches_realised_outcomes(
    outcomes: pd.DataFrame, predicted: str, outcome: str
) -> None:
    assert outcomes[outcome].notna().sum() > 20_000
    assert calibration_gaps(outcomes, predicted, outcome) == []


SHORT_HORIZONS = [
    ("p_next_stage_30d", "rose"),
    ("p_churn_30d", "no_purchase_30d"),
    ("p_churn_90d", "no_purchase_90d"),
    ("expected_revenue_30d", "revenue_30d"),
    ("expected_revenue_90d", "revenue_90d"),
]


def test_simulate_calibration_check_catches_off_by_one_step(
    sim: dict[str, pd.DataFrame], outcomes: pd.DataFrame
) -> None:
    # Realised over a horizon one step too long, the same truth must fail the check ...
    longer = realised(sim["truth"], sim["events"], shift_days=30)
    for predicted, outcome in SHORT_HORIZONS:
        assert calibration_gaps(longer, predicted, outcome), predicted
    # ... and so must a truth taken from the state one step earlier, or one step later.
    ordered = outcomes.sort_values(["customer_id", "as_of"])
    columns = [predicted for predicted, _ in SHORT_HORIZONS]
    for step in (1, -1):
        shifted = ordered.copy()
        shifted[columns] = ordered.groupby("customer_id")[columns].shift(step)
        for predicted, outcome in SHORT_HORIZONS:
            assert calibration_gaps(shifted, predicted, outcome), (step, predicted)


def test_simulate_expected_revenue_is_consistent_over_time(sim: dict[str, pd.DataFrame]) -> None:
    # Tower property: today's 90-day expectation is the mean of the 30-day expectations at the
    # next three dates; the 365-day one lies between 12 and 13 steps of them. These sums carry
    # no spend noise, so they pin the recursion down more tightly than realised revenue can.
    truth = sim["truth"]
    monthly = truth.pivot(index="customer_id", columns="as_of", values="expected_revenue_30d")
    dates = list(monthly.columns)
    parts = []
    for i, as_of in enumerate(dates[: len(dates) - 12]):
        today = truth[truth["as_of"] == as_of].set_index("customer_id")
        ahead = monthly.loc[today.index, dates[i : i + 13]].to_numpy()
        assert not np.isnan(ahead).any()
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": today.index,
                    "e90": today["expected_revenue_90d"].to_numpy(),
                    "e365": today["expected_revenue_365d"].to_numpy(),
                    "sum3": ahead[:, :3].sum(axis=1),
                    "sum12": ahead[:, :12].sum(axis=1),
                    "sum13": ahead.sum(axis=1),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)

    def gap(a: str, b: str) -> tuple[float, float]:
        diff = frame[a] - frame[b]
        centred = diff - diff.mean()
        se = float(np.sqrt((centred.groupby(frame["customer_id"]).sum() ** 2).sum())) / len(frame)
        return float(diff.mean()), se

    mean, se = gap("e90", "sum3")
    assert abs(mean) < 4 * se and se < 0.02 * frame["e90"].mean()
    above, se_low = gap("e365", "sum12")
    below, se_high = gap("e365", "sum13")
    assert above > -4 * se_low and below < 4 * se_high


def test_simulate_refund_window_weights_are_exact() -> None:
    from lifecycle.features.simulate import _window_weights

    # A 30-day window: a purchase at uniform time loses its refund (delay U(1, 14) days)
    # inside the window with probability (6.5 + 16) / 30; the ramp terms weight by t.
    month = _window_weights(30)
    ramp_refunded = (29 / 60 * 169 - 2197 / 90) / 13 + (15 - (14 - 196 / 60))
    np.testing.assert_allclose(month[0], [1.0, 22.5 / 30, 0.5, ramp_refunded / 30])
    year = _window_weights(365)
    assert year.shape == (13, 4)
    np.testing.assert_allclose(year[:, 0].sum(), 12 + 5 / 30)
    np.testing.assert_allclose(year[:11, 1], 1.0)  # refunds of early purchases land inside
    np.testing.assert_allclose(year[12, 1], (16 / 26) / 30)  # the last 5 days: (5-1)^2/26/30


def test_simulate_campaigns_are_randomised_and_work(sim: dict[str, pd.DataFrame]) -> None:
    campaigns, events, customers = sim["campaigns"], sim["events"], sim["customers"]
    treated = campaigns["group"].eq("treatment")
    share = treated.mean()
    se = np.sqrt(
        CAMPAIGN_TREATMENT_PROBABILITY * (1 - CAMPAIGN_TREATMENT_PROBABILITY) / len(campaigns)
    )
    assert abs(share - CAMPAIGN_TREATMENT_PROBABILITY) < 4 * se
    assert set(campaigns["group"]) == {"treatment", "control"}
    # Only customers signed up before the send are targeted.
    merged = campaigns.merge(customers, on="customer_id")
    assert (merged["signup_ts"] < merged["sent_ts"]).all()
    eligible = sum((customers["signup_ts"] < t).sum() for t in campaigns["sent_ts"].unique())
    assert abs(len(campaigns) / eligible - CAMPAIGN_TARGETING_PROBABILITY) < 0.02

    # Exposures: exactly the treated rows, at the send time.
    exposures = events[events["event_type"] == "campaign_exposure"]
    exposed = exposures[["customer_id", "campaign_id", "event_ts"]].rename(
        columns={"event_ts": "sent_ts"}
    )
    expected = campaigns.loc[treated, ["customer_id", "campaign_id", "sent_ts"]]
    key = ["customer_id", "campaign_id", "sent_ts"]
    assert (
        exposed.sort_values(key)
        .reset_index(drop=True)
        .equals(expected.sort_values(key).reset_index(drop=True))
    )

    # Purchases in the campaign's step: treated customers buy more; tagged purchases only
    # come from treated customers with a positive uplift.
    purchases = events[events["event_type"] == "purchase"]
    rows = campaigns.merge(
        purchases[["customer_id", "event_ts", "campaign_id"]],
        on="customer_id",
        how="left",
        suffixes=("", "_purchase"),
    )
    in_step = (rows["event_ts"] >= rows["sent_ts"]) & (
        rows["event_ts"] < rows["sent_ts"] + pd.Timedelta(days=30)
    )
    counts = in_step.groupby([rows["customer_id"], rows["campaign_id"]]).sum()
    table = campaigns.set_index(["customer_id", "campaign_id"]).join(counts.rename("purchases"))
    rate = table.groupby("group")["purchases"].agg(["mean", "var", "size"])
    diff = rate.loc["treatment", "mean"] - rate.loc["control", "mean"]
    assert diff > 3 * np.sqrt((rate["var"] / rate["size"]).sum())
    tagged = rows[in_step & rows["campaign_id_purchase"].notna()]
    assert len(tagged) > 50
    assert (tagged["campaign_id_purchase"] == tagged["campaign_id"]).all()
    assert (tagged["group"] == "treatment").all() and (tagged["true_uplift"] > 0).all()
    assert (campaigns["true_uplift"] < 0).mean() > 0.03
    assert (campaigns["true_uplift"] > 0).mean() > 0.5


def test_simulate_churn_risk_depends_on_latent_state(
    outcomes: pd.DataFrame, sim: dict[str, pd.DataFrame]
) -> None:
    # Customers alike on purchase count and recency still differ a lot in true churn risk.
    purchases = sim["events"].loc[
        sim["events"]["event_type"] == "purchase", ["customer_id", "event_ts"]
    ]
    buyers = outcomes[outcomes["p_churn_90d"].notna()][
        ["customer_id", "as_of", "p_churn_90d", "alive"]
    ]
    pairs = buyers.merge(purchases, on="customer_id")
    pairs = pairs[pairs["event_ts"] < pairs["as_of"]]
    rfm = pairs.groupby(["customer_id", "as_of"]).agg(
        n=("event_ts", "size"), last=("event_ts", "max")
    )
    rows = buyers.set_index(["customer_id", "as_of"]).join(rfm)
    rows["frequency"] = pd.cut(rows["n"], [0, 1, 3, np.inf])
    rows["recency"] = pd.cut(
        (rows.index.get_level_values("as_of") - rows["last"]).dt.days,
        [0, 30, 90, 180, np.inf],
        right=False,
    )
    groups = rows.groupby(["frequency", "recency"], observed=True)["p_churn_90d"]
    spread = groups.quantile(0.9) - groups.quantile(0.1)
    big = groups.size() >= 200
    assert big.sum() >= 6
    assert (spread[big] > 0.25).all(), spread[big]
    # Being alive (latent) matters beyond what frequency and recency say.
    by_alive = (
        rows.groupby(["frequency", "recency", "alive"], observed=True)["p_churn_90d"]
        .mean()
        .unstack()
    )
    assert (by_alive[False] - by_alive[True]).dropna().min() > 0.1
    # Non-purchase activity in the last 30 days reveals that latent state.
    signals = sim["events"][sim["events"]["event_type"].isin(ACTIVITY_EVENTS)]
    recent = []
    for as_of in rows.index.get_level_values("as_of").unique():
        window = signals[
            (signals["event_ts"] >= as_of - pd.Timedelta(days=30)) & (signals["event_ts"] < as_of)
        ]
        recent.append(window.groupby("customer_id").size().rename(as_of))
    activity = pd.concat(recent, axis=1).stack().rename_axis(["customer_id", "as_of"])
    rows["activity"] = activity.reindex(rows.index, fill_value=0).to_numpy()
    by_state = rows.groupby("alive")["activity"].mean()
    assert by_state[True] > 2 * by_state[False]
    within = rows.groupby(["frequency", "recency"], observed=True)[["activity", "p_churn_90d"]]
    assert (within.corr(method="spearman").xs("activity", level=2)["p_churn_90d"] < -0.2).all()
