"""The canonical event contract: column names, types and the default vocabulary.

Every loader turns its source into this shape, every feature reads it. Timestamps are
timezone-aware UTC; durations (windows, recency, tenure) are measured in absolute time
(24-hour days), so daylight-saving changes never stretch or shrink a window.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

STAGES: tuple[str, ...] = ("reach", "acquisition", "conversion", "retention", "loyalty")
"""Lifecycle stages in order; a customer's stage is the highest one reached."""

REQUIRED_COLUMNS: tuple[str, ...] = ("customer_id", "event_ts", "event_type")
OPTIONAL_COLUMNS: tuple[str, ...] = ("revenue", "currency", "channel", "campaign_id")
EVENT_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

DEFAULT_VOCABULARY: tuple[str, ...] = (
    "visit",
    "ad_click",
    "app_install",
    "app_open",
    "email_open",
    "signup",
    "add_to_cart",
    "purchase",
    "refund",
    "referral",
    "loyalty_join",
    "review",
    "support_ticket",
    "campaign_exposure",
    "offer_redemption",
)
"""Event types understood out of the box; a config may replace or extend the list.

``campaign_exposure`` is a campaign reaching a customer (a receipt, an email sent);
``offer_redemption`` is the customer's answer to one (a coupon or offer redeemed), a response
whether or not a purchase carries the campaign id."""

DEFAULT_CHANNELS: tuple[str, ...] = (
    "organic_search",
    "paid_social",
    "email",
    "referral",
    "affiliate",
    "direct",
)
"""Marketing channels the shipped config and the simulator use out of the box."""

EVENT_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("event_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("revenue", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("channel", pa.string()),
        pa.field("campaign_id", pa.string()),
    ]
)
"""Arrow schema of canonical events, as written to Parquet."""

CUSTOMER_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("acquisition_channel", pa.string()),
        pa.field("country", pa.string()),
        pa.field("signup_ts", pa.timestamp("us", tz="UTC")),
    ]
)
"""Arrow schema of the optional customer table (extra columns are allowed)."""


def empty_events() -> pd.DataFrame:
    """Return an empty canonical event frame with the right dtypes.

    Returns
    -------
    pandas.DataFrame
        Zero rows, the columns of :data:`EVENT_COLUMNS`.

    Examples
    --------
    >>> list(empty_events().columns)[:3]
    ['customer_id', 'event_ts', 'event_type']
    """
    return EVENT_SCHEMA.empty_table().to_pandas()


def to_canonical_table(events: pd.DataFrame) -> pa.Table:
    """Convert a canonical event frame to an Arrow table with :data:`EVENT_SCHEMA`.

    Parameters
    ----------
    events
        Frame with at least the required columns; absent optional columns become null.

    Returns
    -------
    pyarrow.Table
        Columns in canonical order and types.
    """
    frame = events.copy()
    for col in OPTIONAL_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    return pa.Table.from_pandas(
        frame[list(EVENT_COLUMNS)], schema=EVENT_SCHEMA, preserve_index=False
    )
