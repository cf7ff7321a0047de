"""Shared event logs for the feature tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from lifecycle.features.schema import EVENT_COLUMNS


def make_transaction_log(seed: int = 0, customers: int = 120) -> pd.DataFrame:
    """Purchases only (no loyalty events), 2023: steady, bursty-then-gone and late buyers."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2023-01-01", tz="UTC")
    for i in range(customers):
        kind = i % 3
        first = rng.uniform(0, 120 if kind < 2 else 240)
        last = {0: 365.0, 1: first + rng.uniform(30, 120), 2: 365.0}[kind]
        gap = rng.uniform(5, 40)
        day = first
        while day < last:
            rows.append((f"c{i:03d}", start + pd.Timedelta(days=day), rng.uniform(5, 200)))
            day += rng.exponential(gap)
    frame = pd.DataFrame(rows, columns=["customer_id", "event_ts", "revenue"])
    frame["event_ts"] = frame["event_ts"].astype("datetime64[us, UTC]")
    frame["event_type"] = "purchase"
    frame["currency"] = "USD"
    for name in EVENT_COLUMNS:
        if name not in frame:
            frame[name] = None
    return frame[list(EVENT_COLUMNS)]


@pytest.fixture
def transaction_log() -> Callable[..., pd.DataFrame]:
    """Build a purchases-only log: ``transaction_log(seed=0, customers=120)``."""
    return make_transaction_log
