"""Synthetic customer journeys with known ground truth.

:func:`simulate` writes an event log in the canonical contract (:data:`EVENT_SCHEMA`) together
with what a real log never has: each customer's latent state and the *true* probabilities and
expectations the predictions try to recover.

The model
---------
Time runs in 30-day steps from ``start``. Customers arrive with growth over the period through
one of six acquisition channels; each draws latent traits (purchase-rate multiplier (gamma),
mean spend (lognormal, heavy tail), lapse propensity, engagement affinity, advocacy and
support-ticket propensities, refund probability, campaign sensitivity that is mostly positive,
sometimes about zero and occasionally negative, an app-user flag); the channel shifts these
(referral customers retain better, paid-social ones worse). A latent Markov chain moves at step
boundaries: ``alive`` (lapsed customers come back with a small probability) and ``engagement``
in {0, 1, 2}. Within a step, events are Poisson counts given the state at the step start,
placed uniformly in time: visits, app opens, email opens and add-to-carts depend strongly on
engagement and on being alive, so non-purchase activity reveals the latent state. The first
event at arrival is a visit, an ad click or an app install; a signup follows with a per-step
hazard (some sign up at once); purchases happen only after signup, with lognormal amounts, and
some are refunded 1-14 days later. Referrals, reviews and a one-off loyalty join occur only
while the customer is at least in retention. A support ticket raises the chance of lapsing at
the step's end. Every step a campaign, sent at the step start, targets a random share of
signed-up customers, gives each a random offer and randomises them to treatment or control;
treatment multiplies the purchase rate in that step by ``1 + true_uplift`` (the customer's
sensitivity times the offer's strength) and tags a share ``uplift / (1 + uplift)`` of the
step's purchases with the campaign id. The truth table is computed by an exact backward
recursion over the latent chain (signed up x alive x engagement), marginalising future
campaign assignments, offers, tickets and pending refunds; it describes the process as if it
continued past ``end`` (the log simply stops there).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lifecycle.features.schema import DEFAULT_CHANNELS, DEFAULT_VOCABULARY, EVENT_SCHEMA, STAGES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.integer[Any]]
BoolArray = npt.NDArray[np.bool_]

STEP_DAYS = 30
"""Length of one step of the latent chain, and the spacing of the truth's ``as_of`` dates."""

CAMPAIGN_TARGETING_PROBABILITY = 0.35
"""Chance that an eligible (signed-up) customer is picked for a step's campaign."""

CAMPAIGN_TREATMENT_PROBABILITY = 0.5
"""Chance that a picked customer is randomised to treatment rather than control."""

ACQUISITION_CHANNELS: tuple[str, ...] = DEFAULT_CHANNELS
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "KR", "BR", "IN")
OFFERS: tuple[str, ...] = ("discount_10", "free_shipping", "bundle", "double_points")
CURRENCY = "USD"

CUSTOMER_TABLE_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("acquisition_channel", pa.string()),
        pa.field("country", pa.string()),
        pa.field("arrival_ts", pa.timestamp("us", tz="UTC")),
        pa.field("signup_ts", pa.timestamp("us", tz="UTC")),
        pa.field("referrer_id", pa.string()),
    ]
)
"""Arrow schema of ``customers.parquet``: observable attributes only."""

CAMPAIGN_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("offer", pa.string()),
        pa.field("sent_ts", pa.timestamp("us", tz="UTC")),
        pa.field("group", pa.string()),
        pa.field("true_uplift", pa.float64()),
    ]
)
"""Arrow schema of ``campaigns.parquet``: randomised assignments with the true uplift."""

TRUTH_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("as_of", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("stage", pa.string()),
        pa.field("alive", pa.bool_()),
        pa.field("engagement", pa.int8()),
        pa.field("p_next_stage_30d", pa.float64()),
        pa.field("p_churn_30d", pa.float64()),
        pa.field("p_churn_90d", pa.float64()),
        pa.field("expected_revenue_30d", pa.float64()),
        pa.field("expected_revenue_90d", pa.float64()),
        pa.field("expected_revenue_365d", pa.float64()),
    ]
)
"""Arrow schema of ``truth.parquet``: latent state and true predictions per customer and date."""

# --- Model parameters --------------------------------------------------------------------------
# Per-channel tables follow ACQUISITION_CHANNELS; per-engagement tables are rates per full step
# for an alive customer at engagement 0, 1, 2; the *_LAPSED factor scales them when lapsed.
_CHANNEL_SHARE = (0.28, 0.22, 0.10, 0.10, 0.12, 0.18)
_CHANNEL_PURCHASE = (1.0, 0.8, 1.05, 1.15, 0.85, 1.1)
_CHANNEL_LAPSE = (1.0, 1.45, 0.9, 0.65, 1.25, 0.9)
_CHANNEL_SIGNUP = (1.0, 0.7, 1.3, 1.3, 0.8, 1.1)
_CHANNEL_IMMEDIATE_SIGNUP = (0.4, 0.3, 0.65, 0.6, 0.4, 0.5)
_CHANNEL_ALIVE_AT_ARRIVAL = (0.8, 0.6, 0.85, 0.9, 0.65, 0.85)
_CHANNEL_CAMPAIGN = (1.0, 1.1, 1.3, 0.9, 1.2, 0.9)
_CHANNEL_ENGAGEMENT_AT_ARRIVAL = (
    (0.40, 0.40, 0.20),
    (0.60, 0.30, 0.10),
    (0.30, 0.45, 0.25),
    (0.25, 0.45, 0.30),
    (0.55, 0.35, 0.10),
    (0.30, 0.45, 0.25),
)
_CHANNEL_AFFINITY_BETA = ((2.0, 2.0), (1.6, 2.6), (2.2, 2.0), (2.6, 1.8), (1.8, 2.4), (2.2, 2.0))
_COUNTRY_SHARE = (0.42, 0.12, 0.12, 0.08, 0.11, 0.09, 0.06)
_COUNTRY_SPEND = (1.0, 0.95, 0.9, 0.85, 0.8, 0.55, 0.4)
_OFFER_STRENGTH = (1.0, 0.7, 0.5, 0.8)

_VISIT, _VISIT_LAPSED = (1.0, 2.5, 5.0), 0.08
_APP_OPEN, _APP_OPEN_LAPSED = (0.5, 2.5, 6.0), 0.05
_EMAIL_OPEN, _EMAIL_OPEN_LAPSED = (0.4, 1.2, 2.5), 0.25
_ADD_TO_CART, _ADD_TO_CART_LAPSED = (0.1, 0.5, 1.4), 0.05
_PURCHASE, _PURCHASE_LAPSED = (0.05, 0.22, 0.6), 0.04
_TICKET, _TICKET_LAPSED = (0.03, 0.06, 0.10), 0.3
_REFERRAL, _REVIEW, _LOYALTY_JOIN = (0.015, 0.05, 0.12), (0.02, 0.06, 0.12), (0.03, 0.07, 0.14)
_ADVOCACY_LAPSED = 0.1
_SIGNUP, _SIGNUP_LAPSED = (0.06, 0.2, 0.45), 0.1
_LAPSE = (0.16, 0.08, 0.04)  # P(alive -> lapsed) at a step end, times the lapse propensity
_TICKET_LAPSE = 0.35  # extra lapse chance (of the remainder) after a support ticket
_COMEBACK = (0.02, 0.05, 0.10)  # P(lapsed -> alive) by engagement
_ENGAGEMENT_MOVE = 0.35  # alive: up with 0.35 * affinity, down with 0.35 * (1 - affinity)
_LAPSED_UP, _LAPSED_DOWN = 0.03, 0.35
_SPEND_MEDIAN, _SPEND_SIGMA, _PURCHASE_SIGMA = 35.0, 0.75, 0.5
_REFUND_BETA = (1.2, 16.0)
_REFUND_DELAY_DAYS = (1.0, 14.0)  # uniform
_ARRIVAL_GROWTH = math.log(3.0)  # arrivals per day triple over the period
_APP_USER_SHARE = 0.3
_IMMEDIATE_SIGNUP_WINDOW_US = 3_600_000_000  # an immediate signup lands within an hour

_DAY_US = 86_400_000_000
_STEP_US = STEP_DAYS * _DAY_US
_NEVER = np.iinfo(np.int64).max
_TRUTH_HORIZONS_DAYS = (30, 90, 365)

EVENT_TYPES: tuple[str, ...] = tuple(sorted(DEFAULT_VOCABULARY))
"""Event types in code order; sorted, so sorting codes sorts names."""

_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}
_CH_EMAIL = ACQUISITION_CHANNELS.index("email")
_CH_DIRECT = ACQUISITION_CHANNELS.index("direct")
_CH_REFERRAL = ACQUISITION_CHANNELS.index("referral")
_PAID_CHANNELS = (
    ACQUISITION_CHANNELS.index("paid_social"),
    ACQUISITION_CHANNELS.index("affiliate"),
)


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate` wrote: counts, the simulated period and the file paths.

    Attributes
    ----------
    customers, events, campaign_rows, truth_rows
        Row counts of ``customers.parquet``, ``events.parquet``, ``campaigns.parquet`` and
        ``truth.parquet``.
    start, end
        The simulated period as ISO dates; ``end`` is exclusive (``start + days``).
    files
        File name (``events``, ``customers``, ``campaigns``, ``truth``) to path.
    """

    customers: int
    events: int
    campaign_rows: int
    truth_rows: int
    start: str
    end: str
    files: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-able dict.

        Returns
        -------
        dict
            Counts as ``int``, dates as ISO strings, files as ``name -> path``.

        Examples
        --------
        >>> SimulationSummary(1, 2, 0, 0, "2024-01-01", "2024-01-31").as_dict()["events"]
        2
        """
        return {
            "customers": int(self.customers),
            "events": int(self.events),
            "campaign_rows": int(self.campaign_rows),
            "truth_rows": int(self.truth_rows),
            "start": self.start,
            "end": self.end,
            "files": dict(self.files),
        }


@dataclass(frozen=True)
class _Traits:
    """Per-customer attributes drawn at arrival (one chunk)."""

    channel: IntArray
    country: IntArray
    arrival_us: IntArray
    app_user: BoolArray
    alive0: BoolArray
    engagement0: IntArray
    immediate_signup: FloatArray
    spend_mean: FloatArray
    refund_prob: FloatArray
    uplift: FloatArray  # (n, offers): true multiplicative effect minus one
    activity: FloatArray
    purchase_mult: FloatArray
    lapse_mult: FloatArray
    affinity: FloatArray
    advocacy: FloatArray
    ticket_mult: FloatArray


@dataclass(frozen=True)
class _Dynamics:
    """Per-customer rates per full step and transition probabilities.

    Rates are indexed ``[customer, alive, engagement]``; the lapse and comeback probabilities
    (which apply to one side of ``alive`` only) ``[customer, engagement]``.
    """

    visit: FloatArray
    app_open: FloatArray
    email_open: FloatArray
    add_to_cart: FloatArray
    purchase: FloatArray
    ticket: FloatArray
    referral: FloatArray
    review: FloatArray
    loyalty_join: FloatArray
    signup: FloatArray
    lapse: FloatArray
    lapse_after_ticket: FloatArray
    comeback: FloatArray
    engagement_next: FloatArray  # (n, alive, eng, eng')


@dataclass(frozen=True)
class _TruthTables:
    """True predictions for every latent state of every customer in a chunk."""

    no_purchase_30: FloatArray  # (n, alive, eng), signed up
    no_purchase_90: FloatArray
    any_advocacy: FloatArray  # (n, alive, eng)
    revenue: tuple[FloatArray, ...]  # per horizon, (n, signed, alive, eng)


@dataclass
class _EventBuffer:
    """Columns of one chunk's events, appended step by step."""

    customer: list[IntArray] = field(default_factory=list)
    ts: list[IntArray] = field(default_factory=list)
    event_type: list[IntArray] = field(default_factory=list)
    channel: list[IntArray] = field(default_factory=list)
    revenue: list[FloatArray] = field(default_factory=list)
    campaign: list[IntArray] = field(default_factory=list)

    def add(
        self,
        customer: IntArray,
        ts: IntArray,
        event_type: str,
        channel: IntArray | int,
        revenue: FloatArray | None = None,
        campaign: IntArray | int = -1,
    ) -> None:
        """Append events of one type."""
        n = customer.size
        if n == 0:
            return
        self.customer.append(customer.astype(np.int64, copy=False))
        self.ts.append(ts.astype(np.int64, copy=False))
        self.event_type.append(np.full(n, _CODE[event_type], dtype=np.int8))
        self.channel.append(np.broadcast_to(np.asarray(channel, dtype=np.int8), (n,)))
        self.revenue.append(np.full(n, np.nan) if revenue is None else revenue)
        self.campaign.append(np.broadcast_to(np.asarray(campaign, dtype=np.int16), (n,)))

    def clear(self) -> None:
        """Drop the appended parts (after :meth:`columns`, to free memory)."""
        for part in (
            self.customer,
            self.ts,
            self.event_type,
            self.channel,
            self.revenue,
            self.campaign,
        ):
            part.clear()

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Concatenate the appended parts."""
        if not self.customer:
            return {
                "customer": np.zeros(0, np.int64),
                "ts": np.zeros(0, np.int64),
                "event_type": np.zeros(0, np.int8),
                "channel": np.zeros(0, np.int8),
                "revenue": np.zeros(0, np.float64),
                "campaign": np.zeros(0, np.int16),
            }
        return {
            "customer": np.concatenate(self.customer),
            "ts": np.concatenate(self.ts),
            "event_type": np.concatenate(self.event_type),
            "channel": np.concatenate(self.channel),
            "revenue": np.concatenate(self.revenue),
            "campaign": np.concatenate(self.campaign),
        }


def _by_state(base: tuple[float, ...], lapsed_factor: float) -> FloatArray:
    """Return a (1, alive, engagement) table from per-engagement rates of an alive customer."""
    alive_rates = np.asarray(base, dtype=np.float64)
    return np.stack([alive_rates * lapsed_factor, alive_rates])[None, :, :]


def _draw_traits(rng: np.random.Generator, n: int, start_us: int, days: int) -> _Traits:
    """Draw arrival times, channels, countries and latent traits for ``n`` customers."""
    channel = rng.choice(len(ACQUISITION_CHANNELS), size=n, p=_CHANNEL_SHARE)
    country = rng.choice(len(COUNTRIES), size=n, p=_COUNTRY_SHARE)
    # Arrival density grows exponentially over the period (inverse-CDF draw).
    u = rng.random(n)
    offset_days = days * np.log1p(u * math.expm1(_ARRIVAL_GROWTH)) / _ARRIVAL_GROWTH
    arrival_us = start_us + np.minimum((offset_days * _DAY_US).astype(np.int64), days * _DAY_US - 1)
    app_user = rng.random(n) < _APP_USER_SHARE
    alive0 = rng.random(n) < np.take(_CHANNEL_ALIVE_AT_ARRIVAL, channel)
    eng_cdf = np.cumsum(np.asarray(_CHANNEL_ENGAGEMENT_AT_ARRIVAL)[channel], axis=1)
    r = rng.random(n)
    engagement0 = (r >= eng_cdf[:, 0]).astype(np.int64) + (r >= eng_cdf[:, 1])
    immediate = np.take(_CHANNEL_IMMEDIATE_SIGNUP, channel) * np.where(alive0, 1.0, 0.2)
    spend_mean = (
        _SPEND_MEDIAN
        * np.exp(_SPEND_SIGMA * rng.standard_normal(n))
        * np.take(_COUNTRY_SPEND, country)
    )
    refund_prob = rng.beta(*_REFUND_BETA, size=n)
    # Campaign sensitivity: mostly positive, a quarter about zero, a tenth negative.
    kind = rng.random(n)
    positive = rng.gamma(2.0, 0.25, size=n)
    neutral = 0.03 * rng.standard_normal(n)
    negative = -rng.gamma(2.0, 0.08, size=n)
    sensitivity = np.where(kind < 0.65, positive, np.where(kind < 0.9, neutral, negative))
    sensitivity = sensitivity * np.take(_CHANNEL_CAMPAIGN, channel)
    uplift = np.maximum(sensitivity[:, None] * np.asarray(_OFFER_STRENGTH)[None, :], -0.8)
    activity = rng.gamma(4.0, 0.25, size=n)
    purchase_mult = (
        rng.gamma(2.0, 0.5, size=n)
        * np.take(_CHANNEL_PURCHASE, channel)
        * np.where(app_user, 1.2, 1.0)
    )
    lapse_mult = (
        rng.gamma(3.0, 1.0 / 3.0, size=n)
        * np.take(_CHANNEL_LAPSE, channel)
        * np.where(app_user, 0.85, 1.0)
    )
    beta = np.asarray(_CHANNEL_AFFINITY_BETA)[channel]
    affinity = rng.beta(beta[:, 0], beta[:, 1])
    advocacy = rng.gamma(0.7, 1.0 / 0.7, size=n)
    ticket_mult = rng.gamma(2.0, 0.5, size=n)
    return _Traits(
        channel=channel.astype(np.int64),
        country=country.astype(np.int64),
        arrival_us=arrival_us,
        app_user=app_user,
        alive0=alive0,
        engagement0=engagement0,
        immediate_signup=immediate,
        spend_mean=spend_mean,
        refund_prob=refund_prob,
        uplift=uplift,
        activity=activity,
        purchase_mult=purchase_mult,
        lapse_mult=lapse_mult,
        affinity=affinity,
        advocacy=advocacy,
        ticket_mult=ticket_mult,
    )


def _dynamics(traits: _Traits) -> _Dynamics:
    """Turn traits into per-state rates and transition probabilities."""
    n = traits.channel.size
    col = np.ones((n, 1, 1))

    def scaled(base: tuple[float, ...], lapsed: float, mult: FloatArray | None) -> FloatArray:
        table = _by_state(base, lapsed) * col
        return table if mult is None else table * mult[:, None, None]

    app = traits.app_user.astype(np.float64)
    advocacy = traits.advocacy
    lapse = np.minimum(np.asarray(_LAPSE)[None, :] * traits.lapse_mult[:, None], 0.95)
    lapse_after_ticket = 1.0 - (1.0 - lapse) * (1.0 - _TICKET_LAPSE)
    comeback = np.broadcast_to(np.asarray(_COMEBACK)[None, :], (n, 3)).copy()
    # Engagement moves one level at a time; alive customers drift by affinity, lapsed ones down.
    up = _ENGAGEMENT_MOVE * traits.affinity
    down = _ENGAGEMENT_MOVE * (1.0 - traits.affinity)
    eng = np.zeros((n, 2, 3, 3))
    for alive, (p_up, p_down) in enumerate(
        ((np.full(n, _LAPSED_UP), np.full(n, _LAPSED_DOWN)), (up, down))
    ):
        eng[:, alive, 0, 1] = p_up
        eng[:, alive, 0, 0] = 1.0 - p_up
        eng[:, alive, 1, 2] = p_up
        eng[:, alive, 1, 0] = p_down
        eng[:, alive, 1, 1] = 1.0 - p_up - p_down
        eng[:, alive, 2, 1] = p_down
        eng[:, alive, 2, 2] = 1.0 - p_down
    signup_mult = np.take(_CHANNEL_SIGNUP, traits.channel).astype(np.float64)
    return _Dynamics(
        visit=scaled(_VISIT, _VISIT_LAPSED, traits.activity),
        app_open=scaled(_APP_OPEN, _APP_OPEN_LAPSED, traits.activity * app),
        email_open=scaled(_EMAIL_OPEN, _EMAIL_OPEN_LAPSED, None),
        add_to_cart=scaled(_ADD_TO_CART, _ADD_TO_CART_LAPSED, np.sqrt(traits.purchase_mult)),
        purchase=scaled(_PURCHASE, _PURCHASE_LAPSED, traits.purchase_mult),
        ticket=scaled(_TICKET, _TICKET_LAPSED, traits.ticket_mult),
        referral=scaled(_REFERRAL, _ADVOCACY_LAPSED, advocacy),
        review=scaled(_REVIEW, _ADVOCACY_LAPSED, advocacy),
        loyalty_join=scaled(_LOYALTY_JOIN, _ADVOCACY_LAPSED, advocacy),
        signup=np.minimum(scaled(_SIGNUP, _SIGNUP_LAPSED, signup_mult), 1.0),
        lapse=lapse,
        lapse_after_ticket=lapse_after_ticket,
        comeback=comeback,
        engagement_next=eng,
    )


def _refund_cdf(delay_days: FloatArray) -> FloatArray:
    """Return P(refund delay < ``delay_days``) for the uniform refund delay."""
    lo, hi = _REFUND_DELAY_DAYS
    return np.clip((delay_days - lo) / (hi - lo), 0.0, 1.0)


def _window_weights(horizon_days: int) -> FloatArray:
    """Return per-step integrals that turn purchase rates into net revenue within a window.

    Row ``j`` holds, for step ``j`` of the window ``[0, W)`` (``W = horizon_days``) and ``t``
    the time within the step in step units, the integrals over the covered part of the step of
    ``1``, ``F(W - p)``, ``t`` and ``t * F(W - p)``, where ``p`` is the purchase time and ``F``
    the refund-delay CDF: a purchase at ``p`` is refunded inside the window with probability
    ``refund_prob * F(W - p)``, and ``t`` is the purchase intensity shape in a step where the
    customer signs up at a uniform time. The integrands are piecewise quadratic in ``t``, so
    Simpson's rule on each piece is exact.
    """
    lo, hi = _REFUND_DELAY_DAYS
    n_steps = math.ceil(horizon_days / STEP_DAYS)
    weights = np.zeros((n_steps, 4))
    for j in range(n_steps):
        tau = min(1.0, (horizon_days - STEP_DAYS * j) / STEP_DAYS)
        kinks = [(horizon_days - d) / STEP_DAYS - j for d in (lo, hi)]
        points = sorted({0.0, tau, *(k for k in kinks if 0.0 < k < tau)})
        for a, b in itertools.pairwise(points):
            t = np.array([a, (a + b) / 2.0, b])
            cdf = _refund_cdf(horizon_days - STEP_DAYS * (j + t))
            simpson = np.array([1.0, 4.0, 1.0]) * (b - a) / 6.0
            weights[j] += [
                b - a,
                float(simpson @ cdf),
                (b * b - a * a) / 2.0,
                float(simpson @ (t * cdf)),
            ]
    return weights


def _expect_next(
    value: FloatArray, alive_next: FloatArray, eng_next: FloatArray, signup: FloatArray
) -> FloatArray:
    """Return E[value(next state) | state] over (signed up, alive, engagement)."""
    # value: (n, s', a', e'); eng_next: (n, a, e, e'); alive_next: P(a'=1 | s, a, e).
    over_eng = np.einsum("naef,nsbf->nsbae", eng_next, value)  # (n, s', a', a, e)
    if_lapsed = over_eng[:, :, 0][:, :, None]  # (n, s', 1, a, e)
    if_alive = over_eng[:, :, 1][:, :, None]
    over_alive = (1.0 - alive_next)[:, None] * if_lapsed + alive_next[:, None] * if_alive
    signed_next = np.stack([signup, np.ones_like(signup)], axis=1)  # P(s'=1 | s, a, e)
    result: FloatArray = (1.0 - signed_next) * over_alive[:, 0] + signed_next * over_alive[:, 1]
    return result


def _truth_tables(traits: _Traits, dyn: _Dynamics) -> _TruthTables:
    """Compute every true prediction for every latent state by exact backward recursion."""
    q = CAMPAIGN_TARGETING_PROBABILITY * CAMPAIGN_TREATMENT_PROBABILITY
    lam = dyn.purchase
    boost = 1.0 + traits.uplift  # (n, offers); each targeted customer gets a random offer
    no_purchase = (1.0 - q) * np.exp(-lam) + q * np.exp(
        -lam[..., None] * boost[:, None, None, :]
    ).mean(axis=3)
    mean_boost = 1.0 + q * traits.uplift.mean(axis=1)
    # P(alive next | signed, alive, eng): tickets (signed-up only) raise the lapse chance.
    p_ticket = -np.expm1(-dyn.ticket[:, 1, :])
    lapse_signed = dyn.lapse + p_ticket * (dyn.lapse_after_ticket - dyn.lapse)
    alive_next = np.stack(
        [
            np.stack([dyn.comeback, 1.0 - dyn.lapse], axis=1),
            np.stack([dyn.comeback, 1.0 - lapse_signed], axis=1),
        ],
        axis=1,
    )  # (n, s, a, e)
    eng_next = dyn.engagement_next

    # Churn: P(no purchase in the next 1 and 3 steps), for signed-up customers.
    survive = np.ones_like(no_purchase)
    churn = []
    for _ in range(3):
        over_eng = np.einsum("naef,nbf->nbae", eng_next, survive)
        expected = (1.0 - alive_next[:, 1]) * over_eng[:, 0] + alive_next[:, 1] * over_eng[:, 1]
        survive = no_purchase * expected
        churn.append(survive)

    spend = traits.spend_mean[:, None, None]
    refund = traits.refund_prob[:, None, None]
    signed_rate = spend * lam * mean_boost[:, None, None]
    signup_rate = spend * lam * dyn.signup
    revenue = []
    for horizon in _TRUTH_HORIZONS_DAYS:
        weights = _window_weights(horizon)
        value = np.zeros((lam.shape[0], 2, 2, 3))
        for j in range(weights.shape[0] - 1, -1, -1):
            flat_len, flat_ref, ramp_len, ramp_ref = weights[j]
            reward = np.stack(
                [
                    signup_rate * (ramp_len - refund * ramp_ref),
                    signed_rate * (flat_len - refund * flat_ref),
                ],
                axis=1,
            )
            if j == weights.shape[0] - 1:
                value = reward
            else:
                value = reward + _expect_next(value, alive_next, eng_next, dyn.signup)
        revenue.append(value)
    any_advocacy = -np.expm1(-(dyn.referral + dyn.review + dyn.loyalty_join))
    return _TruthTables(
        no_purchase_30=churn[0],
        no_purchase_90=churn[2],
        any_advocacy=any_advocacy,
        revenue=tuple(revenue),
    )


def _uniform_ts(rng: np.random.Generator, lo: IntArray, hi: IntArray) -> IntArray:
    """Return one uniform microsecond in ``[lo, hi)`` per row."""
    span = hi - lo
    offset = np.minimum((rng.random(lo.size) * span).astype(np.int64), span - 1)
    return lo + offset


def _poisson_events(
    rng: np.random.Generator,
    events: _EventBuffer,
    customer: IntArray,
    rate: FloatArray,
    lo: IntArray,
    hi: IntArray,
    event_type: str,
    channel: IntArray | int,
) -> IntArray:
    """Draw Poisson counts, place the events uniformly in ``[lo, hi)`` and return the counts."""
    counts = rng.poisson(rate)
    rows = np.repeat(np.arange(customer.size), counts)
    chan = channel if isinstance(channel, int) else channel[rows]
    events.add(customer[rows], _uniform_ts(rng, lo[rows], hi[rows]), event_type, chan)
    return counts


@dataclass(frozen=True)
class _ChunkTables:
    """Arrow tables of one chunk, ready to append to the four files."""

    events: pa.Table
    customers: pa.Table
    campaigns: pa.Table
    truth: pa.Table


def _customer_ids(first: int, n: int, width: int) -> pa.Array:
    """Return ids ``C0000001``-style for global indices ``first + 1 .. first + n``."""
    numbers = pa.array(np.arange(first + 1, first + n + 1, dtype=np.int64)).cast(pa.string())
    padded = pc.utf8_lpad(numbers, width=width, padding="0")
    return pc.binary_join_element_wise("C", padded, "")


def _take_strings(values: tuple[str, ...], codes: npt.NDArray[Any]) -> pa.Array:
    """Return ``values[code]`` per row, null where ``code < 0``."""
    indices = pa.array(codes.astype(np.int64), mask=codes < 0)
    return pa.array(values, pa.string()).take(indices)


def _timestamps(us: IntArray, null: BoolArray | None = None) -> pa.Array:
    """Return a UTC microsecond timestamp array."""
    return pa.array(us.view("datetime64[us]"), type=pa.timestamp("us", tz="UTC"), mask=null)


def _match_referrers(
    referral_ts: IntArray, referral_customer: IntArray, arrival_us: IntArray, referred: IntArray
) -> IntArray:
    """Give each referred customer the earliest unused referral event before their arrival.

    Customers are served in arrival order (first come, first served), so the k-th customer who
    finds an unused event takes the k-th referral event; returns -1 where none was free.
    """
    referrer = np.full(arrival_us.size, -1, dtype=np.int64)
    if referred.size == 0 or referral_ts.size == 0:
        return referrer
    order = np.lexsort((referral_customer, referral_ts))
    ev_ts, ev_customer = referral_ts[order], referral_customer[order]
    referred = referred[np.argsort(arrival_us[referred], kind="stable")]
    available = np.searchsorted(ev_ts, arrival_us[referred], side="left")
    rank = np.arange(1, referred.size + 1)
    served_count = rank + np.minimum(0, np.minimum.accumulate(available - rank))
    served = np.diff(served_count, prepend=0) > 0
    referrer[referred[served]] = ev_customer[served_count[served] - 1]
    return referrer


@dataclass
class _Journeys:
    """State of one chunk's customers between steps: latent chain and observed history."""

    alive: IntArray  # 0/1
    engagement: IntArray  # 0, 1, 2
    signup_us: IntArray  # _NEVER until the signup
    n_purchases: IntArray
    advocate: BoolArray  # has a referral, review or loyalty join
    joined: BoolArray  # has the (one-off) loyalty join
    pending_refunds: FloatArray  # expected refund revenue (<= 0) still due at the step start

    @classmethod
    def at_arrival(cls, traits: _Traits) -> _Journeys:
        """Return the state of customers who have just arrived."""
        n = traits.channel.size
        return cls(
            alive=traits.alive0.astype(np.int64),
            engagement=traits.engagement0.astype(np.int64),
            signup_us=np.full(n, _NEVER, dtype=np.int64),
            n_purchases=np.zeros(n, dtype=np.int64),
            advocate=np.zeros(n, dtype=bool),
            joined=np.zeros(n, dtype=bool),
            pending_refunds=np.zeros(n),
        )


@dataclass(frozen=True)
class _Step:
    """The customers present during one step and their state at its start."""

    k: int
    s0: int  # step start (us)
    s1: int  # step end (us)
    idx: IntArray  # chunk positions of present customers
    alive: IntArray
    engagement: IntArray
    channel: IntArray
    arrival: IntArray
    lo: IntArray  # max(arrival, s0): where the customer's part of the step starts
    hi: IntArray  # s1
    share: FloatArray  # fraction of the step the customer is present
    signed: BoolArray  # signed up before s0

    def rate(self, table: FloatArray, rows: IntArray | None = None) -> FloatArray:
        """Return a per-state rate table at each present customer's state, per full step."""
        if rows is None:
            return table[self.idx, self.alive, self.engagement]
        return table[self.idx[rows], self.alive[rows], self.engagement[rows]]


def _truth_rows(
    journeys: _Journeys, dyn: _Dynamics, tables: _TruthTables, s0: int, arrival_us: IntArray
) -> dict[str, npt.NDArray[Any]]:
    """Return the truth for customers who arrived before ``s0``, from their state at ``s0``."""
    est = np.flatnonzero(arrival_us < s0)
    s = (journeys.signup_us[est] < s0).astype(np.int64)
    a, e = journeys.alive[est], journeys.engagement[est]
    purchases = journeys.n_purchases[est]
    stage = np.where(
        purchases >= 2,
        np.where(journeys.advocate[est], 4, 3),
        np.where(purchases == 1, 2, s),
    )
    p_next = np.select(
        [stage == 0, stage <= 2, stage == 3],
        [
            dyn.signup[est, a, e],
            1.0 - tables.no_purchase_30[est, a, e],
            tables.any_advocacy[est, a, e],
        ],
        0.0,
    )
    buyer = purchases >= 1
    pending = journeys.pending_refunds[est]
    revenue = {
        f"expected_revenue_{h}d": table[est, s, a, e] + pending
        for h, table in zip(_TRUTH_HORIZONS_DAYS, tables.revenue, strict=True)
    }
    return {
        "customer": est,
        "as_of": np.full(est.size, s0, dtype=np.int64),
        "stage": stage,
        "alive": a.astype(bool),
        "engagement": e.astype(np.int8),
        "p_next_stage_30d": p_next,
        "p_churn_30d": np.where(buyer, tables.no_purchase_30[est, a, e], np.nan),
        "p_churn_90d": np.where(buyer, tables.no_purchase_90[est, a, e], np.nan),
        **revenue,
    }


def _send_campaign(
    rng: np.random.Generator,
    events: _EventBuffer,
    traits: _Traits,
    eligible: IntArray,
    k: int,
    s0: int,
) -> tuple[dict[str, npt.NDArray[Any]], FloatArray, FloatArray]:
    """Target, randomise and expose; return the campaign rows, rate multipliers, response shares."""
    n = traits.channel.size
    targeted = eligible[rng.random(eligible.size) < CAMPAIGN_TARGETING_PROBABILITY]
    treated_flag = rng.random(targeted.size) < CAMPAIGN_TREATMENT_PROBABILITY
    offer = rng.integers(0, len(OFFERS), size=targeted.size)
    uplift = traits.uplift[targeted, offer]
    treated = targeted[treated_flag]
    events.add(treated, np.full(treated.size, s0), "campaign_exposure", _CH_EMAIL, campaign=k)
    multiplier = np.ones(n)
    multiplier[treated] = 1.0 + uplift[treated_flag]
    response = np.zeros(n)  # share of the step's purchases that respond to the campaign
    response[treated] = np.maximum(uplift[treated_flag], 0.0) / multiplier[treated]
    rows = {
        "customer": targeted,
        "step": np.full(targeted.size, k, dtype=np.int64),
        "offer": offer,
        "treated": treated_flag,
        "uplift": uplift,
    }
    return rows, multiplier, response


def _arrival_events(
    rng: np.random.Generator, events: _EventBuffer, traits: _Traits, step: _Step
) -> None:
    """Emit the reach event at arrival (and the app install of app users) for new customers."""
    new = np.flatnonzero(step.arrival >= step.s0)
    customer, arrival, channel = step.idx[new], step.arrival[new], step.channel[new]
    app_user = traits.app_user[customer]
    app_first = app_user & (rng.random(new.size) < 0.5)
    paid = np.isin(channel, _PAID_CHANNELS)
    first_type = np.where(paid, 0, np.where(app_first, 1, 2))
    for code, name in enumerate(("ad_click", "app_install", "visit")):
        rows = np.flatnonzero(first_type == code)
        chan = _CH_DIRECT if name == "app_install" else channel[rows]
        events.add(customer[rows], arrival[rows], name, chan)
    later = np.flatnonzero(app_user & (first_type != 1))
    install_hi = np.minimum(arrival[later] + _DAY_US, step.s1)
    install_ts = _uniform_ts(rng, arrival[later], install_hi)
    events.add(customer[later], install_ts, "app_install", _CH_DIRECT)


def _signups(
    rng: np.random.Generator,
    events: _EventBuffer,
    traits: _Traits,
    dyn: _Dynamics,
    journeys: _Journeys,
    step: _Step,
) -> None:
    """Sign customers up: a hazard per step, and at once for some arriving customers."""
    is_new = step.arrival >= step.s0
    p_hazard = step.rate(dyn.signup) * step.share
    p_now = np.where(is_new, traits.immediate_signup[step.idx], 0.0)
    draw = rng.random(step.idx.size)
    signs = ~step.signed & (draw < p_now + (1.0 - p_now) * p_hazard)
    at_once = draw < p_now
    later_ts = _uniform_ts(rng, step.lo, step.hi)
    once_hi = np.minimum(step.arrival + _IMMEDIATE_SIGNUP_WINDOW_US, step.s1)
    signup_ts = np.where(at_once, _uniform_ts(rng, step.arrival, once_hi), later_ts)
    rows = np.flatnonzero(signs)
    journeys.signup_us[step.idx[rows]] = signup_ts[rows]
    events.add(step.idx[rows], signup_ts[rows], "signup", step.channel[rows])


def _activity(
    rng: np.random.Generator, events: _EventBuffer, dyn: _Dynamics, step: _Step
) -> IntArray:
    """Emit browsing, app, cart, email and support events; return support tickets per customer."""
    idx, lo, hi, share = step.idx, step.lo, step.hi, step.share
    _poisson_events(rng, events, idx, step.rate(dyn.visit) * share, lo, hi, "visit", step.channel)
    _poisson_events(
        rng, events, idx, step.rate(dyn.app_open) * share, lo, hi, "app_open", _CH_DIRECT
    )
    _poisson_events(
        rng, events, idx, step.rate(dyn.add_to_cart) * share, lo, hi, "add_to_cart", step.channel
    )
    # Email opens and support tickets need an account: signed up before the step.
    sg = np.flatnonzero(step.signed)
    _poisson_events(
        rng,
        events,
        idx[sg],
        step.rate(dyn.email_open, sg),
        lo[sg],
        hi[sg],
        "email_open",
        _CH_EMAIL,
    )
    tickets = np.zeros(idx.size, dtype=np.int64)
    tickets[sg] = _poisson_events(
        rng,
        events,
        idx[sg],
        step.rate(dyn.ticket, sg),
        lo[sg],
        hi[sg],
        "support_ticket",
        _CH_DIRECT,
    )
    return tickets


def _purchases(
    rng: np.random.Generator,
    events: _EventBuffer,
    traits: _Traits,
    dyn: _Dynamics,
    journeys: _Journeys,
    step: _Step,
    multiplier: FloatArray,
    response: FloatArray,
) -> IntArray:
    """Emit purchases (after signup) and their refunds; return the buying customer per purchase.

    Also sets ``journeys.pending_refunds`` to the refunds still expected at the next step start:
    the refund draw of a purchase is not revealed before its refund time, so the truth uses its
    conditional probability, not the draw.
    """
    n = traits.channel.size
    buyers = np.flatnonzero(journeys.signup_us[step.idx] < step.s1)
    customer = step.idx[buyers]
    lo = np.maximum(step.lo[buyers], journeys.signup_us[customer])
    rate = step.rate(dyn.purchase, buyers) * multiplier[customer] * ((step.s1 - lo) / _STEP_US)
    rows = np.repeat(np.arange(buyers.size), rng.poisson(rate))
    buyer = customer[rows]
    ts = _uniform_ts(rng, lo[rows], np.full(rows.size, step.s1, dtype=np.int64))
    noise = np.exp(_PURCHASE_SIGMA * rng.standard_normal(rows.size) - _PURCHASE_SIGMA**2 / 2.0)
    amount = np.maximum(np.round(traits.spend_mean[buyer] * noise, 2), 0.01)
    responded = rng.random(rows.size) < response[buyer]
    channel = step.channel[buyers][rows]
    campaign = np.where(responded, step.k, -1)
    events.add(buyer, ts, "purchase", channel, amount, campaign)

    refund_prob = traits.refund_prob[buyer]
    refunded = rng.random(rows.size) < refund_prob
    delay_lo, delay_hi = _REFUND_DELAY_DAYS
    delay_days = delay_lo + (delay_hi - delay_lo) * rng.random(rows.size)
    refund_ts = ts + (delay_days * _DAY_US).astype(np.int64)
    r = np.flatnonzero(refunded)
    events.add(buyer[r], refund_ts[r], "refund", channel[r], -amount[r])

    cdf = _refund_cdf((step.s1 - ts) / _DAY_US)
    still_due = refund_prob * (1.0 - cdf) / (1.0 - refund_prob * cdf)
    still_due = np.where(refunded & (refund_ts < step.s1), 0.0, still_due)
    due = np.bincount(buyer, weights=amount * still_due, minlength=n)
    journeys.pending_refunds = -due.astype(np.float64)
    return buyer


def _advocacy(
    rng: np.random.Generator,
    events: _EventBuffer,
    dyn: _Dynamics,
    journeys: _Journeys,
    step: _Step,
) -> None:
    """Emit referrals, reviews and the one-off loyalty join of customers in retention or above."""
    ret = np.flatnonzero(journeys.n_purchases[step.idx] >= 2)
    customer, lo, hi, share = step.idx[ret], step.lo[ret], step.hi[ret], step.share[ret]
    channel = step.channel[ret]
    any_advocacy = np.zeros(ret.size, dtype=bool)
    for name, table in (("referral", dyn.referral), ("review", dyn.review)):
        counts = _poisson_events(
            rng, events, customer, step.rate(table, ret) * share, lo, hi, name, channel
        )
        any_advocacy |= counts > 0
    join_rate = step.rate(dyn.loyalty_join, ret) * share * ~journeys.joined[customer]
    joins = np.flatnonzero(rng.poisson(join_rate) > 0)
    events.add(
        customer[joins], _uniform_ts(rng, lo[joins], hi[joins]), "loyalty_join", channel[joins]
    )
    journeys.joined[customer[joins]] = True
    any_advocacy[joins] = True
    journeys.advocate[customer[any_advocacy]] = True


def _transition(
    rng: np.random.Generator,
    dyn: _Dynamics,
    journeys: _Journeys,
    step: _Step,
    tickets: IntArray,
) -> None:
    """Move the latent chain at the step end; a support ticket raises the lapse chance."""
    idx, a, e = step.idx, step.alive, step.engagement
    p_lapse = np.where(tickets > 0, dyn.lapse_after_ticket[idx, e], dyn.lapse[idx, e])
    draw = rng.random(idx.size)
    journeys.alive[idx] = np.where(a == 1, draw >= p_lapse, draw < dyn.comeback[idx, e])
    cdf = np.cumsum(dyn.engagement_next[idx, a, e], axis=1)
    draw = rng.random(idx.size)
    journeys.engagement[idx] = (draw >= cdf[:, 0]).astype(np.int64) + (draw >= cdf[:, 1])


def _simulate_chunk(
    rng: np.random.Generator,
    n: int,
    first: int,
    width: int,
    start_us: int,
    days: int,
    n_steps: int,
) -> _ChunkTables:
    """Simulate one chunk of customers over all steps and return its four tables."""
    traits = _draw_traits(rng, n, start_us, days)
    dyn = _dynamics(traits)
    tables = _truth_tables(traits, dyn)
    journeys = _Journeys.at_arrival(traits)
    events = _EventBuffer()
    truth_parts: list[dict[str, npt.NDArray[Any]]] = []
    campaign_parts: list[dict[str, npt.NDArray[Any]]] = []
    channel = traits.channel.astype(np.int8)

    for k in range(n_steps):
        s0 = start_us + k * _STEP_US
        s1 = s0 + _STEP_US
        if k >= 1:
            truth_parts.append(_truth_rows(journeys, dyn, tables, s0, traits.arrival_us))
        signed = journeys.signup_us < s0  # only arrived customers can have signed up
        rows, multiplier, response = _send_campaign(
            rng, events, traits, np.flatnonzero(signed), k, s0
        )
        campaign_parts.append(rows)

        idx = np.flatnonzero(traits.arrival_us < s1)
        arrival = traits.arrival_us[idx]
        lo = np.maximum(arrival, s0)
        step = _Step(
            k=k,
            s0=s0,
            s1=s1,
            idx=idx,
            alive=journeys.alive[idx],
            engagement=journeys.engagement[idx],
            channel=channel[idx],
            arrival=arrival,
            lo=lo,
            hi=np.full(idx.size, s1, dtype=np.int64),
            share=(s1 - lo) / _STEP_US,
            signed=signed[idx],
        )
        _arrival_events(rng, events, traits, step)
        _signups(rng, events, traits, dyn, journeys, step)
        tickets = _activity(rng, events, dyn, step)
        buyer = _purchases(rng, events, traits, dyn, journeys, step, multiplier, response)
        _advocacy(rng, events, dyn, journeys, step)  # uses purchases before this step
        journeys.n_purchases += np.bincount(buyer, minlength=n)
        _transition(rng, dyn, journeys, step, tickets)

    end_us = start_us + days * _DAY_US
    return _assemble_chunk(
        events,
        truth_parts,
        campaign_parts,
        traits,
        journeys.signup_us,
        first,
        width,
        end_us,
        start_us,
        n_steps,
    )


def _assemble_chunk(
    events: _EventBuffer,
    truth_parts: list[dict[str, npt.NDArray[Any]]],
    campaign_parts: list[dict[str, npt.NDArray[Any]]],
    traits: _Traits,
    signup_us: IntArray,
    first: int,
    width: int,
    end_us: int,
    start_us: int,
    n_steps: int,
) -> _ChunkTables:
    """Sort one chunk's rows and build its four Arrow tables."""
    ids = _customer_ids(first, signup_us.size, width)
    campaign_ids = tuple(f"CMP-{k:04d}" for k in range(n_steps))

    cols = events.columns()
    events.clear()
    kept = np.flatnonzero(cols["ts"] < end_us)
    kept = kept[np.lexsort((cols["event_type"][kept], cols["ts"][kept], cols["customer"][kept]))]
    cols = {name: values[kept] for name, values in cols.items()}
    no_revenue = np.isnan(cols["revenue"])
    event_table = pa.Table.from_arrays(
        [
            ids.take(pa.array(cols["customer"])),
            _timestamps(cols["ts"]),
            _take_strings(EVENT_TYPES, cols["event_type"]),
            pa.array(cols["revenue"], type=pa.float64(), mask=no_revenue),
            _take_strings((CURRENCY,), np.where(no_revenue, -1, 0)),
            _take_strings(ACQUISITION_CHANNELS, cols["channel"]),
            _take_strings(campaign_ids, cols["campaign"]),
        ],
        schema=EVENT_SCHEMA,
    )

    is_referral = cols["event_type"] == _CODE["referral"]
    referrer = _match_referrers(
        cols["ts"][is_referral],
        cols["customer"][is_referral],
        traits.arrival_us,
        np.flatnonzero(traits.channel == _CH_REFERRAL),
    )
    never_signed = signup_us >= end_us
    customer_table = pa.Table.from_arrays(
        [
            ids,
            _take_strings(ACQUISITION_CHANNELS, traits.channel),
            _take_strings(COUNTRIES, traits.country),
            _timestamps(traits.arrival_us),
            _timestamps(np.where(never_signed, 0, signup_us), never_signed),
            ids.take(pa.array(referrer, mask=referrer < 0)),
        ],
        schema=CUSTOMER_TABLE_SCHEMA,
    )

    camp = {
        key: np.concatenate([part[key] for part in campaign_parts]) for key in campaign_parts[0]
    }
    order = np.argsort(camp["customer"], kind="stable")
    camp = {key: values[order] for key, values in camp.items()}
    campaign_table = pa.Table.from_arrays(
        [
            ids.take(pa.array(camp["customer"])),
            _take_strings(campaign_ids, camp["step"]),
            _take_strings(OFFERS, camp["offer"]),
            _timestamps(start_us + camp["step"] * _STEP_US),
            _take_strings(("control", "treatment"), camp["treated"].astype(np.int64)),
            pa.array(camp["uplift"], type=pa.float64()),
        ],
        schema=CAMPAIGN_SCHEMA,
    )

    truth = _concat_parts(truth_parts)
    order = np.argsort(truth["customer"], kind="stable")
    truth = {key: values[order] for key, values in truth.items()}

    def probability(name: str) -> pa.Array:
        values = truth[name]
        return pa.array(values, type=pa.float64(), mask=np.isnan(values))

    truth_table = pa.Table.from_arrays(
        [
            ids.take(pa.array(truth["customer"])),
            _timestamps(truth["as_of"]),
            _take_strings(STAGES, truth["stage"]),
            pa.array(truth["alive"], type=pa.bool_()),
            pa.array(truth["engagement"], type=pa.int8()),
            *(probability(f.name) for f in TRUTH_SCHEMA if f.type == pa.float64()),
        ],
        schema=TRUTH_SCHEMA,
    )
    return _ChunkTables(event_table, customer_table, campaign_table, truth_table)


def _concat_parts(parts: list[dict[str, npt.NDArray[Any]]]) -> dict[str, npt.NDArray[Any]]:
    """Concatenate per-step truth columns (empty arrays with the right dtypes when none)."""
    if parts:
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    empty: dict[str, npt.NDArray[Any]] = {
        "customer": np.zeros(0, np.int64),
        "as_of": np.zeros(0, np.int64),
        "stage": np.zeros(0, np.int64),
        "alive": np.zeros(0, bool),
        "engagement": np.zeros(0, np.int8),
    }
    for f in TRUTH_SCHEMA:
        if f.type == pa.float64():
            empty[f.name] = np.zeros(0)
    return empty


def simulate(
    n_customers: int,
    *,
    seed: int,
    start: str | date = "2022-01-01",
    days: int = 1460,
    out_dir: str | Path,
    chunk_size: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Simulate customer journeys and write events, customers, campaigns and the truth.

    Customers are simulated in chunks of ``chunk_size`` (each with its own random stream,
    ``SeedSequence([seed, chunk_index])``) and streamed to Parquet, so memory stays bounded
    and the same arguments always give byte-identical files.

    Parameters
    ----------
    n_customers
        Number of customers; ids run ``C0000001``, ``C0000002``, ... in index order.
    seed
        Non-negative random seed.
    start
        First day of the simulated period (midnight UTC), a ``date`` or an ISO string.
    days
        Length of the period; no event lies at or after ``start + days``.
    out_dir
        Folder for ``events.parquet``, ``customers.parquet``, ``campaigns.parquet`` and
        ``truth.parquet`` (created if missing; existing files are replaced).
    chunk_size
        Customers per chunk. Part of the random design: changing it changes the output.
    progress
        Called with the number of customers just finished, after each chunk.

    Returns
    -------
    SimulationSummary
        Row counts, the period (``end`` is exclusive) and the written paths.

    Raises
    ------
    ValueError
        When a count, the seed or ``days`` is out of range.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     summary = simulate(200, seed=1, days=120, out_dir=tmp)
    >>> summary.customers, summary.end
    (200, '2022-05-01')
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if isinstance(start, datetime):
        start = start.date()
    start_date = date.fromisoformat(start) if isinstance(start, str) else start
    start_us = (start_date - date(1970, 1, 1)).days * _DAY_US
    n_steps = math.ceil(days / STEP_DAYS)
    width = max(7, len(str(n_customers)))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    schemas = {
        "events": EVENT_SCHEMA,
        "customers": CUSTOMER_TABLE_SCHEMA,
        "campaigns": CAMPAIGN_SCHEMA,
        "truth": TRUTH_SCHEMA,
    }
    paths = {name: out / f"{name}.parquet" for name in schemas}
    partial = {name: out / f".{name}.parquet.partial" for name in schemas}
    rows = dict.fromkeys(schemas, 0)
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for name, schema in schemas.items():
            writers[name] = pq.ParquetWriter(partial[name], schema, compression="zstd")
        for chunk_index, first in enumerate(range(0, n_customers, chunk_size)):
            n = min(chunk_size, n_customers - first)
            rng = np.random.default_rng(np.random.SeedSequence([seed, chunk_index]))
            chunk = _simulate_chunk(rng, n, first, width, start_us, days, n_steps)
            for name in schemas:
                table = getattr(chunk, name)
                writers[name].write_table(table)
                rows[name] += table.num_rows
            if progress is not None:
                progress(n)
        for writer in writers.values():
            writer.close()
        for name in schemas:
            os.replace(partial[name], paths[name])
    finally:
        for writer in writers.values():
            if writer.is_open:
                writer.close()
        for path in partial.values():
            path.unlink(missing_ok=True)

    return SimulationSummary(
        customers=n_customers,
        events=rows["events"],
        campaign_rows=rows["campaigns"],
        truth_rows=rows["truth"],
        start=start_date.isoformat(),
        end=(start_date + timedelta(days=days)).isoformat(),
        files={name: str(path) for name, path in paths.items()},
    )
