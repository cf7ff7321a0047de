"""The observed-data oracle: the best prediction any model of the event log alone can make.

The simulator's truth (the *latent* oracle) knows each customer's hidden chain state and traits.
This module computes, under the simulator's own generative model and parameters, the Bayesian
posterior predictive given only the events before a cutoff ``T``:

    P(next stage within 30 d | events < T),  P(no purchase within 30 d / 90 d | events < T).

How
---
* Given the continuous traits, the latent chain (alive x engagement, 6 states; the signup status
  is read off the log) is filtered exactly with the forward algorithm over the 30-day steps. The
  emission of a step is the product of the Poisson likelihoods of its observed counts (visits,
  app opens, add-to-carts, email opens, support tickets, purchases, referrals, reviews), the
  loyalty join, the signup hazard (with the immediate signup at arrival and its one-hour window),
  the purchase window after a signup within the step, and, in a step whose campaign exposure is
  in the log, the treated purchase rate and the campaign tags of its purchases (mixed over the
  four offers, which the log does not name). A support ticket in the log switches that step's
  lapse probability, as in the simulator.
* The continuous traits (activity, purchase multiplier, lapse propensity, engagement affinity,
  advocacy, ticket propensity, campaign sensitivity) are integrated by self-normalised importance
  sampling per customer: a pilot from the prior, then ``rounds`` adapted proposals (a Gaussian in
  log / logit coordinates fitted to the previous round's weighted draws, mixed with the prior so
  the weights stay bounded). Campaign sensitivity and, where the log does not reveal it, the
  acquisition channel are always drawn from their prior (``_draw_traits`` itself); the other
  traits' prior densities are written out here and checked against ``_draw_traits`` by tests.
* The predictive given (traits, state at ``T``) is exactly what the simulator's truth computes:
  the draws go through ``simulate._dynamics`` and ``simulate._truth_tables``, so the oracle and
  the simulator cannot drift. observed oracle = sum over draws and states of posterior weight x
  truth-table value.

What the likelihood leaves out, and why that is exact: purchase amounts, refunds (their share
and timing), country and spend depend only on traits that no prediction here uses and that are
independent of every trait that does; event times within a step are uniform given the counts
(their density does not depend on the state), except the signup time, which is used; the
arrival event's type (visit, ad click or app install) carries no information beyond the channel
and the app flag, both read off the log. The only non-exactness is Monte Carlo error, reported
per customer (``*_se``, the delta-method standard error of the self-normalised estimate, and
``ess``) and, by the CLI, as the spread of ROC AUC over independent replicates. Monte Carlo noise
can only lower the AUC of the estimate, so the reported observed-oracle AUC is, if anything, a
slight underestimate of the exact one.

Usage: python benchmarks/observed_oracle.py [--customers 3000] [--draws 256] [--replicates 3]
       [--trials 0] [--no-model] [--out DIR]

Writes benchmarks/results/observed-oracle-<UTC time>.json and prints ROC AUC of the latent oracle,
the observed oracle (+- its Monte Carlo error) and a quickly trained LightGBM model.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import betaln, gammaln, logsumexp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lifecycle.features import simulate as sim  # noqa: E402

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results"

# --- The trait prior, in the coordinates the proposals live in ----------------------------------
# _draw_traits draws these gamma factors inline (shape, scale); tests check them against it.
TRAIT_NAMES = ("activity", "purchase", "lapse", "affinity", "advocacy", "ticket")
_GAMMA_PRIOR = {
    "activity": (4.0, 0.25),
    "purchase": (2.0, 0.5),
    "lapse": (3.0, 1.0 / 3.0),
    "advocacy": (0.7, 1.0 / 0.7),
    "ticket": (2.0, 0.5),
}
_LOG_TRAITS = tuple(i for i, name in enumerate(TRAIT_NAMES) if name in _GAMMA_PRIOR)
_AFFINITY = TRAIT_NAMES.index("affinity")
_APP_PURCHASE, _APP_LAPSE = 1.2, 0.85  # app users' factors in _draw_traits
_LAPSED_IMMEDIATE = 0.2  # immediate-signup factor of customers lapsed at arrival

_STEP_US = sim._STEP_US
_WINDOW_US = sim._IMMEDIATE_SIGNUP_WINDOW_US
_PAID = np.isin(np.arange(len(sim.ACQUISITION_CHANNELS)), sim._PAID_CHANNELS)
# Events whose channel column is the customer's acquisition channel (the rest: direct / email).
_CHANNEL_EVENTS = (
    "visit",
    "ad_click",
    "add_to_cart",
    "signup",
    "purchase",
    "refund",
    "referral",
    "review",
    "loyalty_join",
)
_LOYALTY_EVENTS = ("referral", "review", "loyalty_join")
_TYPES = ("visit", "app_open", "add_to_cart", "email_open", "support_ticket", "purchase")
_TYPES = (*_TYPES, "referral", "review", "loyalty_join", "signup", "campaign_exposure", "tagged")
_T = {name: i for i, name in enumerate(_TYPES)}

# Columns of the linear part of the per-step log-likelihood: F[b, k, j] * G[b, d, j, state].
_POISSON_TABLES = (
    ("visit", "visit"),
    ("app_open", "app_open"),
    ("add_to_cart", "add_to_cart"),
    ("email_open", "email_open"),
    ("support_ticket", "ticket"),
    ("purchase", "purchase"),
    ("referral", "referral"),
    ("review", "review"),
)
_N_COLUMNS = 2 * len(_POISSON_TABLES) + 4
_TINY = 1e-300

TARGETS = ("p_next_stage_30d", "p_churn_30d", "p_churn_90d")


@dataclass(frozen=True)
class TraitPool:
    """Draws of the simulator's trait prior (``simulate._draw_traits``), in proposal coordinates.

    ``z`` holds log activity, log purchase factor, log lapse factor, logit affinity, log advocacy
    and log ticket factor (the channel and app factors divided out); ``uplift`` the campaign
    effect of each offer.
    """

    channel: IntArray
    app_user: BoolArray
    z: FloatArray  # (P, 6)
    uplift: FloatArray  # (P, offers)

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int) -> TraitPool:
        """Draw ``size`` customers' traits with the simulator's own function."""
        traits = sim._draw_traits(rng, size, 0, sim.STEP_DAYS)
        ch, app = traits.channel, traits.app_user
        z = np.empty((size, len(TRAIT_NAMES)))
        z[:, 0] = np.log(traits.activity)
        purchase = np.take(sim._CHANNEL_PURCHASE, ch) * np.where(app, _APP_PURCHASE, 1.0)
        z[:, 1] = np.log(traits.purchase_mult / purchase)
        lapse = np.take(sim._CHANNEL_LAPSE, ch) * np.where(app, _APP_LAPSE, 1.0)
        z[:, 2] = np.log(traits.lapse_mult / lapse)
        z[:, 3] = np.log(traits.affinity) - np.log1p(-traits.affinity)
        z[:, 4] = np.log(traits.advocacy)
        z[:, 5] = np.log(traits.ticket_mult)
        return cls(ch, app, z, traits.uplift)

    def rows(
        self, channel: IntArray, app_user: BoolArray, n: int, rng: np.random.Generator
    ) -> IntArray:
        """Pick ``n`` pool rows per customer from the prior given what the log shows.

        A known channel (``>= 0``) and the app flag select their group; an unknown channel
        (only app events in the log, so an app install came first) means a non-paid channel.
        """
        out = np.empty((channel.size, n), dtype=np.int64)
        for ch in np.unique(channel):
            for app in (False, True):
                who = np.flatnonzero((channel == ch) & (app_user == app))
                if who.size == 0:
                    continue
                group = self.app_user == app
                group &= (self.channel == ch) if ch >= 0 else ~_PAID[self.channel]
                candidates = np.flatnonzero(group)
                if candidates.size == 0:
                    raise ValueError(f"trait pool has no draw for channel {ch}, app user {app}")
                out[who] = rng.choice(candidates, size=(who.size, n))
        return out


def log_prior(z: FloatArray, channel: IntArray) -> FloatArray:
    """Return the prior log density of ``z`` (proposal coordinates) given the channel.

    Parameters
    ----------
    z
        Trait coordinates, last axis in :data:`TRAIT_NAMES` order.
    channel
        Acquisition channel code per row of ``z`` (the affinity prior depends on it).

    Returns
    -------
    numpy.ndarray
        Log density including the Jacobians of the log and logit transforms.
    """
    total = np.zeros(z.shape[:-1])
    for i in _LOG_TRAITS:
        shape, scale = _GAMMA_PRIOR[TRAIT_NAMES[i]]
        x = z[..., i]
        total += shape * x - np.exp(x) / scale - gammaln(shape) - shape * math.log(scale)
    beta = np.asarray(sim._CHANNEL_AFFINITY_BETA)[channel]
    x = z[..., _AFFINITY]
    log_x, log_1mx = -np.logaddexp(0.0, -x), -np.logaddexp(0.0, x)
    total += beta[..., 0] * log_x + beta[..., 1] * log_1mx - betaln(beta[..., 0], beta[..., 1])
    return total


def _traits(channel: IntArray, app_user: BoolArray, z: FloatArray, uplift: FloatArray) -> Any:
    """Build ``simulate._Traits`` for flat draws (what the predictions do not use is zero)."""
    n = channel.size
    zero = np.zeros(n)
    purchase = np.take(sim._CHANNEL_PURCHASE, channel) * np.where(app_user, _APP_PURCHASE, 1.0)
    lapse = np.take(sim._CHANNEL_LAPSE, channel) * np.where(app_user, _APP_LAPSE, 1.0)
    return sim._Traits(
        channel=channel,
        country=np.zeros(n, dtype=np.int64),
        arrival_us=np.zeros(n, dtype=np.int64),
        app_user=app_user,
        alive0=np.ones(n, dtype=bool),
        engagement0=np.zeros(n, dtype=np.int64),
        immediate_signup=zero,
        spend_mean=np.ones(n),
        refund_prob=zero,
        uplift=uplift,
        activity=np.exp(z[:, 0]),
        purchase_mult=np.exp(z[:, 1]) * purchase,
        lapse_mult=np.exp(z[:, 2]) * lapse,
        affinity=1.0 / (1.0 + np.exp(-z[:, 3])),
        advocacy=np.exp(z[:, 4]),
        ticket_mult=np.exp(z[:, 5]),
    )


# --- What the log shows, per customer and step ---------------------------------------------------
@dataclass(frozen=True)
class Observed:
    """Per-customer facts and per-step counts read from the events before the cutoff."""

    customer_id: npt.NDArray[np.object_]
    channel: IntArray  # acquisition channel, -1 when the log does not show it
    app_user: BoolArray
    arrival_step: IntArray
    arrival_share: FloatArray  # part of the arrival step after the arrival
    signup_step: IntArray  # n_steps when not signed up before the cutoff
    signup_frac: FloatArray  # part of the signup step after the signup (the purchase window)
    signup_immediate: BoolArray  # signed up within the immediate window of the arrival
    immediate_window: FloatArray  # that window as a share of a step
    stage: IntArray
    counts: IntArray  # (customers, steps, len(_TYPES))
    offer: IntArray  # (customers, steps): offer of a treated step, -1 unknown or untreated

    @property
    def n_steps(self) -> int:
        """Number of complete steps before the cutoff."""
        return int(self.counts.shape[1])

    def take(self, rows: IntArray | slice) -> Observed:
        """Return the customers at ``rows``."""
        return Observed(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


def _as_us(values: pd.Series) -> IntArray:
    """UTC timestamps as int64 microseconds."""
    stamps = pd.to_datetime(values, utc=True).dt.tz_localize(None)
    return stamps.to_numpy(dtype="datetime64[us]").astype(np.int64)


def simulation_start(truth: pd.DataFrame) -> pd.Timestamp:
    """Return the simulated period's first day, from the truth's 30-day ``as_of`` grid.

    The first ``as_of`` is one step after the start when anyone arrived in the first step; if
    not, no event precedes the returned date, which is all the step grid needs.
    """
    first = pd.to_datetime(truth["as_of"], utc=True).min()
    return first - pd.Timedelta(days=sim.STEP_DAYS)


def observe(
    events: pd.DataFrame,
    *,
    start: pd.Timestamp,
    cutoff: pd.Timestamp,
    customers: npt.ArrayLike | None = None,
    campaigns: pd.DataFrame | None = None,
) -> Observed:
    """Read what the likelihood needs from the events strictly before ``cutoff``.

    Parameters
    ----------
    events
        Canonical events (``customer_id``, ``event_ts``, ``event_type``, ``channel``,
        ``campaign_id``).
    start, cutoff
        The simulation start and a cutoff on its 30-day grid.
    customers
        Customer ids to keep (default: everyone with an event before the cutoff); ids without
        an event before the cutoff are dropped.
    campaigns
        ``campaigns.parquet`` as a frame: when given, the offer of each treated step is read from
        it (its ``true_uplift`` is never read); when None the offer is mixed over.

    Returns
    -------
    Observed
        Customers in id order.
    """
    start_us, cut_us = int(start.value // 1000), int(cutoff.value // 1000)
    n_steps, rest = divmod(cut_us - start_us, _STEP_US)
    if rest or n_steps < 1:
        raise ValueError(f"cutoff {cutoff} is not on the simulator's 30-day grid after {start}")
    ts = _as_us(events["event_ts"])
    keep = ts < cut_us
    if customers is not None:
        keep &= events["customer_id"].isin(pd.Index(np.asarray(customers))).to_numpy()
    ev = events.loc[keep, ["customer_id", "event_type", "channel", "campaign_id"]]
    ts = ts[keep]
    ids, cust = np.unique(ev["customer_id"].astype(str).to_numpy(), return_inverse=True)
    n = ids.size
    step = (ts - start_us) // _STEP_US
    kind = ev["event_type"].to_numpy().astype(str)

    arrival = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(arrival, cust, ts)
    arrival_step = (arrival - start_us) // _STEP_US
    arrival_share = (start_us + (arrival_step + 1) * _STEP_US - arrival) / _STEP_US

    # The arrival event (a visit, ad click or app install at the arrival) is not a Poisson count.
    is_arrival_visit = (kind == "visit") & (ts == arrival[cust])
    first_visit = np.zeros(n, dtype=bool)
    arrival_rows = np.flatnonzero(is_arrival_visit)
    first_visit[cust[arrival_rows]] = True
    drop = np.zeros(ts.size, dtype=bool)
    drop[arrival_rows[np.unique(cust[arrival_rows], return_index=True)[1]]] = True

    channel = np.full(n, -1, dtype=np.int64)
    code = {name: i for i, name in enumerate(sim.ACQUISITION_CHANNELS)}
    rows = np.flatnonzero(np.isin(kind, _CHANNEL_EVENTS))
    by_cust = rows[np.unique(cust[rows], return_index=True)[1]]
    channel[cust[by_cust]] = [code[c] for c in ev["channel"].to_numpy()[by_cust]]
    app_user = np.zeros(n, dtype=bool)
    app_user[cust[kind == "app_install"]] = True

    signup = np.full(n, np.iinfo(np.int64).max)
    signed_rows = np.flatnonzero(kind == "signup")
    np.minimum.at(signup, cust[signed_rows], ts[signed_rows])
    signed = signup < cut_us
    signup_step = np.where(signed, (signup - start_us) // _STEP_US, n_steps)
    step_end = start_us + (signup_step + 1) * _STEP_US
    signup_frac = np.where(signed, (step_end - np.maximum(signup, arrival)) / _STEP_US, 0.0)
    window_end = np.minimum(arrival + _WINDOW_US, start_us + (arrival_step + 1) * _STEP_US)
    immediate_window = (window_end - arrival) / _STEP_US
    signup_immediate = signed & (signup < window_end)

    counts = np.zeros((n, n_steps, len(_TYPES)), dtype=np.int64)
    tagged = (kind == "purchase") & ev["campaign_id"].notna().to_numpy()
    for name in _TYPES:
        sel = (tagged if name == "tagged" else kind == name) & ~drop
        np.add.at(counts, (cust[sel], step[sel], _T[name]), 1)

    n_purchases = counts[..., _T["purchase"]].sum(axis=1)
    n_loyalty = sum(counts[..., _T[name]].sum(axis=1) for name in _LOYALTY_EVENTS)
    stage = np.where(
        n_purchases >= 2, np.where(n_loyalty > 0, 4, 3), np.where(n_purchases == 1, 2, signed)
    ).astype(np.int64)

    offer = np.full((n, n_steps), -1, dtype=np.int64)
    if campaigns is not None:
        treated = campaigns[campaigns["group"] == "treatment"]
        sent = _as_us(treated["sent_ts"])
        pos = np.searchsorted(ids, treated["customer_id"].astype(str).to_numpy())
        pos = np.minimum(pos, max(n - 1, 0))
        hit = (ids[pos] == treated["customer_id"].astype(str).to_numpy()) & (sent < cut_us)
        offers = {name: i for i, name in enumerate(sim.OFFERS)}
        offer_code = np.array([offers[o] for o in treated["offer"].to_numpy()], dtype=np.int64)
        offer[pos[hit], ((sent - start_us) // _STEP_US)[hit]] = offer_code[hit]
    return Observed(
        customer_id=ids.astype(object),
        channel=channel,
        app_user=app_user,
        arrival_step=arrival_step,
        arrival_share=arrival_share,
        signup_step=signup_step,
        signup_frac=signup_frac,
        signup_immediate=signup_immediate,
        immediate_window=immediate_window,
        stage=stage,
        counts=counts,
        offer=offer,
    )


def _design(obs: Observed) -> tuple[FloatArray, BoolArray]:
    """Return the coefficients ``F`` (customers, steps, columns) and the treated-step mask."""
    n, k_steps = obs.counts.shape[:2]
    k = np.arange(k_steps)[None, :]
    c = obs.counts
    present = k >= obs.arrival_step[:, None]
    share = np.where(k == obs.arrival_step[:, None], obs.arrival_share[:, None], 1.0) * present
    signed_before = k > obs.signup_step[:, None]
    frac = np.where(k == obs.signup_step[:, None], obs.signup_frac[:, None], 1.0) * (
        k >= obs.signup_step[:, None]
    )
    treated = c[..., _T["campaign_exposure"]] > 0
    purchases = c[..., _T["purchase"]]
    before = np.cumsum(purchases, axis=1) - purchases
    ret = (before >= 2).astype(np.float64)
    joins = c[..., _T["loyalty_join"]]
    joined_before = (np.cumsum(joins, axis=1) - joins) > 0
    join_open = ret * ~joined_before
    exposure = {
        "visit": share,
        "app_open": share,
        "add_to_cart": share,
        "email_open": signed_before,
        "support_ticket": signed_before,
        "purchase": frac * ~treated,
        "referral": ret,
        "review": ret,
    }
    f = np.zeros((n, k_steps, _N_COLUMNS))
    for i, (name, _) in enumerate(_POISSON_TABLES):
        f[..., 2 * i] = c[..., _T[name]]
        f[..., 2 * i + 1] = -np.asarray(exposure[name], dtype=np.float64)
    j = 2 * len(_POISSON_TABLES)
    f[..., j] = join_open * (joins > 0)
    f[..., j + 1] = -join_open * (joins == 0)
    later = present & (k > obs.arrival_step[:, None]) & (k <= obs.signup_step[:, None])
    f[..., j + 2] = later & (k == obs.signup_step[:, None])
    f[..., j + 3] = later & (k < obs.signup_step[:, None])
    return f, treated


def _state_tables(dyn: Any, n: int, d: int) -> dict[str, FloatArray]:
    """Per-state rates of the draws as (customers, draws, 6), state = alive * 3 + engagement."""
    names = {table for _, table in _POISSON_TABLES} | {"loyalty_join", "signup"}
    return {name: getattr(dyn, name).reshape(n, d, 6) for name in names}


def _columns(rates: dict[str, FloatArray]) -> FloatArray:
    """Return ``G`` (customers, draws, columns, 6): the log-terms the coefficients multiply."""
    parts = []
    for _, table in _POISSON_TABLES:
        r = rates[table]
        parts += [np.log(np.maximum(r, _TINY)), r]
    join = rates["loyalty_join"]
    signup = np.clip(rates["signup"], _TINY, 1.0 - 1e-12)
    parts += [np.log(-np.expm1(-np.maximum(join, _TINY))), join, np.log(signup), np.log1p(-signup)]
    return np.stack(parts, axis=2)


def _treated_terms(
    obs: Observed, treated: BoolArray, purchase: FloatArray, uplift: FloatArray
) -> tuple[tuple[IntArray, IntArray], FloatArray]:
    """Log-likelihood of a treated step's purchases beyond ``n log(rate)``, per state.

    The rate is multiplied by ``1 + uplift`` of the (unknown, uniform) offer and each purchase
    carries the campaign tag with probability ``max(uplift, 0) / (1 + uplift)``.
    """
    b, k = np.nonzero(treated)
    if b.size == 0:
        return (b, k), np.zeros((0, purchase.shape[1], 6))
    n = obs.counts[b, k, _T["purchase"]].astype(np.float64)[:, None, None]
    m = obs.counts[b, k, _T["tagged"]].astype(np.float64)[:, None, None]
    u = uplift[b][:, :, None, :]  # (pairs, draws, 1, offers)
    lam = purchase[b][..., None]  # (pairs, draws, 6, 1)
    r = np.maximum(u, 0.0) / (1.0 + u)
    n4, m4 = n[..., None], m[..., None]
    tag = np.where(m4 > 0, m4 * np.log(np.maximum(r, _TINY)), 0.0) + (n4 - m4) * np.log1p(-r)
    terms = n4 * np.log1p(u) - lam * (1.0 + u) + tag
    terms = np.where((m4 > 0) & (r <= 0.0), -np.inf, terms)
    offer = obs.offer[b, k]
    known = offer >= 0
    out = logsumexp(terms, axis=3) - math.log(terms.shape[3])
    if known.any():
        out[known] = np.take_along_axis(terms[known], offer[known][:, None, None, None], axis=3)[
            ..., 0
        ]
    return (b, k), out


def _arrival_terms(obs: Observed, signup: FloatArray, immediate: FloatArray) -> FloatArray:
    """Log-likelihood of the signup (or none) in the arrival step, per draw and state."""
    alive = np.repeat([0.0, 1.0], 3)
    p_now = immediate[..., None] * np.where(alive == 1.0, 1.0, _LAPSED_IMMEDIATE)
    share = obs.arrival_share[:, None, None]
    signed = (obs.signup_step == obs.arrival_step)[:, None, None]
    in_window = obs.signup_immediate[:, None, None]
    # Densities per step length: an immediate signup is uniform in its window, a later one in
    # the rest of the step (the hazard scaled by the share spreads over the share).
    density = p_now * in_window / obs.immediate_window[:, None, None] + (1.0 - p_now) * signup
    none = (1.0 - p_now) * (1.0 - signup * share)
    return np.log(np.maximum(np.where(signed, density, none), _TINY))


def _transitions(dyn: Any, n: int, d: int) -> FloatArray:
    """Return P(state' | state) per draw, without and with a support ticket: (n, d, 2, 6, 6)."""
    lapse = dyn.lapse.reshape(n, d, 3)
    lapse_ticket = dyn.lapse_after_ticket.reshape(n, d, 3)
    comeback = dyn.comeback.reshape(n, d, 3)
    eng = dyn.engagement_next.reshape(n, d, 2, 3, 3)
    out = np.zeros((n, d, 2, 6, 6))
    for ticket, p_lapse in enumerate((lapse, lapse_ticket)):
        for a in (0, 1):
            stay_alive = 1.0 - p_lapse if a == 1 else comeback  # P(alive' = 1)
            for e in range(3):
                s = a * 3 + e
                p1 = stay_alive[..., e][..., None]
                out[:, :, ticket, s, 0:3] = (1.0 - p1) * eng[:, :, a, e, :]
                out[:, :, ticket, s, 3:6] = p1 * eng[:, :, a, e, :]
    return out


def _initial(channel: IntArray) -> FloatArray:
    """Return P(state at arrival) per draw from the channel: (..., 6)."""
    alive = np.take(sim._CHANNEL_ALIVE_AT_ARRIVAL, channel)[..., None]
    eng = np.asarray(sim._CHANNEL_ENGAGEMENT_AT_ARRIVAL)[channel]
    return np.concatenate([(1.0 - alive) * eng, alive * eng], axis=-1)


def _filter(
    obs: Observed, f: FloatArray, treated: BoolArray, channel: IntArray, traits: Any, dyn: Any
) -> tuple[FloatArray, FloatArray]:
    """Forward algorithm: log P(log | traits) and P(state at the cutoff | log, traits)."""
    n, d = channel.shape
    k_steps = obs.n_steps
    rates = _state_tables(dyn, n, d)
    g = _columns(rates)  # (n, d, J, 6)
    g = g.transpose(0, 2, 1, 3).reshape(n, _N_COLUMNS, d * 6)
    ll = np.matmul(f, g).reshape(n, k_steps, d, 6)
    (tb, tk), extra = _treated_terms(
        obs, treated, rates["purchase"], traits.uplift.reshape(n, d, -1)
    )
    np.add.at(ll, (tb, tk), extra)
    immediate = np.take(sim._CHANNEL_IMMEDIATE_SIGNUP, channel)
    arrival = _arrival_terms(obs, rates["signup"], immediate)
    ll[np.arange(n), obs.arrival_step] += arrival
    moves = _transitions(dyn, n, d)
    ticket = obs.counts[..., _T["support_ticket"]] > 0
    alpha = _initial(channel)
    log_z = np.zeros((n, d))
    for k in range(int(obs.arrival_step.min()), k_steps):
        e = ll[:, k]
        top = e.max(axis=2, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        alpha = alpha * np.exp(e - top)
        z = alpha.sum(axis=2)
        possible = z > 0.0  # else the draw cannot produce the log (e.g. a tag without uplift)
        log_z += np.log(np.where(possible, z, 1.0)) + top[..., 0]
        log_z[~possible] = -np.inf
        alpha = np.where(possible[..., None], alpha / np.where(possible, z, 1.0)[..., None], 1 / 6)
        present = k >= obs.arrival_step
        m = moves[np.arange(n), :, ticket[:, k].astype(np.int64)]  # (n, d, 6, 6)
        moved = alpha[..., 0, None] * m[..., 0, :]
        for s in range(1, 6):
            moved += alpha[..., s, None] * m[..., s, :]
        alpha = np.where(present[:, None, None], moved, alpha)
    return log_z, alpha


def _fit_proposal(z: FloatArray, w: FloatArray, floor: float) -> tuple[FloatArray, FloatArray]:
    """Weighted mean and covariance of the draws (n, d, dims), floored on the diagonal."""
    mean = np.einsum("nd,ndi->ni", w, z)
    dev = z - mean[:, None, :]
    cov = np.einsum("nd,ndi,ndj->nij", w, dev, dev)
    cov += np.eye(z.shape[2])[None] * floor**2
    return mean, cov


def _log_normal(z: FloatArray, mean: FloatArray, chol: FloatArray) -> FloatArray:
    """Log density of N(mean, chol chol^T) at draws (n, d, dims)."""
    dev = z - mean[:, None, :]
    sol = np.linalg.solve(chol[:, None], dev[..., None])[..., 0]
    log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    dims = z.shape[2]
    return -0.5 * (sol**2).sum(axis=2) - log_det[:, None] - 0.5 * dims * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class _Estimate:
    """One batch's estimates: values, standard errors and effective sample sizes."""

    values: dict[str, FloatArray]
    errors: dict[str, FloatArray]
    ess: FloatArray


def _batch(
    obs: Observed,
    pool: TraitPool,
    rng: np.random.Generator,
    draws: int,
    rounds: int,
    inflate: float,
    defensive: float,
    prior_ess: float,
) -> _Estimate:
    """Posterior predictive for one batch of customers by adaptive importance sampling."""
    n = obs.customer_id.size
    f, treated = _design(obs)
    app = np.repeat(obs.app_user[:, None], draws, axis=1)
    mean = chol = adapt = None
    for r in range(rounds + 1):
        rows = pool.rows(obs.channel, obs.app_user, draws, rng)
        channel, z = pool.channel[rows], pool.z[rows]
        log_ratio = np.zeros((n, draws))
        if r > 0:
            # Customers whose pilot the prior served well keep the prior; the rest get a
            # Gaussian fitted to the previous round, mixed with the prior (bounded weights).
            gaussian = adapt[:, None] & (rng.random((n, draws)) >= defensive)
            noise = rng.standard_normal(z.shape)
            proposed = mean[:, None, :] + np.einsum("nij,ndj->ndi", chol, noise)
            z = np.where(gaussian[..., None], proposed, z)
            prior = log_prior(z, channel)
            q = np.logaddexp(
                math.log1p(-defensive) + _log_normal(z, mean, chol),
                math.log(defensive) + prior,
            )
            log_ratio = np.where(adapt[:, None], prior - q, 0.0)
        traits = _traits(
            channel.ravel(),
            app.ravel(),
            z.reshape(-1, z.shape[2]),
            pool.uplift[rows].reshape(n * draws, -1),
        )
        dyn = sim._dynamics(traits)
        log_z, alpha = _filter(obs, f, treated, channel, traits, dyn)
        log_w = log_z + log_ratio
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        if r == 0:
            adapt = 1.0 / (w**2).sum(axis=1) < prior_ess * draws
        if r < rounds:
            mean, cov = _fit_proposal(z, w, floor=0.05)
            chol = np.linalg.cholesky(cov * inflate)

    tables = sim._truth_tables(traits, dyn)
    no30 = tables.no_purchase_30.reshape(n, draws, 6)
    no90 = tables.no_purchase_90.reshape(n, draws, 6)
    advocacy = tables.any_advocacy.reshape(n, draws, 6)
    signup = dyn.signup.reshape(n, draws, 6)
    stage = obs.stage[:, None, None]
    next_stage = np.select(
        [stage == 0, stage <= 2, stage == 3], [signup, 1.0 - no30, advocacy], np.nan
    )
    buyer = (obs.stage >= 2)[:, None]
    per_draw = {
        "p_next_stage_30d": (alpha * next_stage).sum(axis=2),
        "p_churn_30d": np.where(buyer, (alpha * no30).sum(axis=2), np.nan),
        "p_churn_90d": np.where(buyer, (alpha * no90).sum(axis=2), np.nan),
    }
    values, errors = {}, {}
    for name, v in per_draw.items():
        est = (w * v).sum(axis=1)
        values[name] = est
        errors[name] = np.sqrt((w**2 * (v - est[:, None]) ** 2).sum(axis=1))
    return _Estimate(values, errors, 1.0 / (w**2).sum(axis=1))


def observed_oracle(
    events: pd.DataFrame | str | Path,
    truth: pd.DataFrame,
    campaigns: pd.DataFrame | None = None,
    *,
    cutoff: pd.Timestamp | str,
    customers: npt.ArrayLike | None = None,
    draws: int = 256,
    seed: int = 0,
    rounds: int = 2,
    batch_draws: int = 16_384,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Return the posterior predictive of the simulator's model given only the events.

    Parameters
    ----------
    events
        The simulator's ``events.parquet`` (a path or a frame).
    truth
        The simulator's ``truth.parquet``: only its ``as_of`` grid is read (the step grid);
        never its latent state or true probabilities.
    campaigns
        ``campaigns.parquet``: when given, the offer of each treated step is read from it (the
        event log does not name it); ``true_uplift`` is never read. None: events only, the offer
        is mixed over (what a model trained on the events can know).
    cutoff
        A date on the truth's 30-day grid; events strictly before it are used.
    customers
        Customer ids to predict (default: everyone with an event before the cutoff).
    draws
        Importance-sampling draws per customer and round.
    seed
        Seed of the draws.
    rounds
        Adaptive rounds after the prior pilot (0: plain importance sampling from the prior).
    batch_draws
        Customers x draws handled at once (memory).
    progress
        Called with the number of customers just finished.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``stage`` (code), ``p_next_stage_30d``, ``p_churn_30d``,
        ``p_churn_90d`` (NaN without a purchase; NaN next stage in loyalty), a standard error
        ``<target>_se`` per target and ``ess`` (effective draws), one row per customer.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = sim.simulate(30, seed=1, days=120, out_dir=tmp)
    ...     truth = pd.read_parquet(f"{tmp}/truth.parquet")
    ...     out = observed_oracle(f"{tmp}/events.parquet", truth, cutoff="2022-03-02", draws=32)
    >>> bool(out["p_churn_90d"].dropna().between(0, 1).all())
    True
    """
    frame = events if isinstance(events, pd.DataFrame) else pd.read_parquet(events)
    start = simulation_start(truth)
    cut = pd.Timestamp(cutoff)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    obs = observe(frame, start=start, cutoff=cut, customers=customers, campaigns=campaigns)
    rng = np.random.default_rng(np.random.SeedSequence([seed, obs.n_steps]))
    pool = TraitPool.draw(rng, max(200_000, 50 * draws))
    n = obs.customer_id.size
    size = max(1, batch_draws // draws)
    values = {name: np.full(n, np.nan) for name in TARGETS}
    errors = {name: np.full(n, np.nan) for name in TARGETS}
    ess = np.full(n, np.nan)
    order = np.argsort(obs.arrival_step, kind="stable")  # batches start at their first arrival
    for first in range(0, n, size):
        rows = order[first : first + size]
        est = _batch(
            obs.take(rows),
            pool,
            rng,
            draws,
            rounds,
            inflate=2.0,
            defensive=0.1,
            prior_ess=0.3,
        )
        for name in TARGETS:
            values[name][rows] = est.values[name]
            errors[name][rows] = est.errors[name]
        ess[rows] = est.ess
        if progress is not None:
            progress(rows.size)
    out = pd.DataFrame({"customer_id": obs.customer_id.astype(str), "stage": obs.stage})
    for name in TARGETS:
        out[name] = values[name]
    for name in TARGETS:
        out[f"{name}_se"] = errors[name]
    out["ess"] = ess
    return out


# --- Benchmark: ROC AUC of the latent oracle, the observed oracle and a model --------------------
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def observed_oracle_auc(
    events: pd.DataFrame,
    truth: pd.DataFrame,
    rows: pd.DataFrame,
    *,
    cutoff: pd.Timestamp,
    column: str,
    draws: int,
    replicates: int,
    seed: int,
    rounds: int = 2,
    campaigns: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """ROC AUC of the observed oracle on labelled rows, with its Monte Carlo error.

    ``rows`` holds ``customer_id`` and a 0/1 ``label``. Each replicate uses independent draws;
    ``roc_auc`` is the AUC of the replicates' mean probability, ``mc_sd`` the spread of one
    replicate's AUC (an upper bound on the mean's error, which is about ``mc_sd / sqrt(R)``).
    """
    from lifecycle.training.metrics import classification_metrics

    ids = rows["customer_id"].astype(str).to_numpy()
    y = rows["label"].to_numpy(dtype=np.float64)
    began = time.perf_counter()
    preds, aucs, ess = [], [], []
    for r in range(replicates):
        out = observed_oracle(
            events,
            truth,
            campaigns,
            cutoff=cutoff,
            customers=ids,
            draws=draws,
            seed=seed + 1000 * r,
            rounds=rounds,
        ).set_index("customer_id")
        p = out[column].reindex(ids).to_numpy(dtype=np.float64)
        preds.append(p)
        aucs.append(classification_metrics(y, np.clip(p, 0.0, 1.0))["roc_auc"])
        ess.append(out["ess"].reindex(ids).to_numpy())
    mean = np.mean(preds, axis=0)
    metrics = classification_metrics(y, np.clip(mean, 0.0, 1.0))
    sd = float(np.std(aucs, ddof=1)) if replicates > 1 else float("nan")
    all_ess = np.concatenate(ess)
    return {
        "roc_auc": metrics["roc_auc"],
        "mc_sd": sd,
        "mc_se_of_mean": sd / math.sqrt(replicates),
        "replicate_roc_auc": aucs,
        "metrics": metrics,
        "draws": draws,
        "rounds": rounds,
        "replicates": replicates,
        "ess_p10": float(np.nanquantile(all_ess, 0.1)),
        "ess_median": float(np.nanmedian(all_ess)),
        "seconds": round(time.perf_counter() - began, 1),
    }


def _trivial_score(task: str, features: pd.DataFrame) -> FloatArray:
    """One-feature heuristic: recent activity for next stage, purchase recency for churn."""
    if task == "next_stage":
        return features["n_events_30d"].to_numpy(dtype=np.float64)
    return features["days_since_last_purchase"].to_numpy(dtype=np.float64)


EVALUATIONS = (  # (name, task, horizon days, truth / oracle column)
    ("next_stage", "next_stage", 30, "p_next_stage_30d"),
    ("churn", "churn", 90, "p_churn_90d"),
    ("churn_30d", "churn", 30, "p_churn_30d"),
)


def bench(
    customers: int,
    *,
    seed: int,
    days: int,
    draws: int,
    rounds: int,
    replicates: int,
    trials: int | None,
    offers: bool,
) -> dict[str, Any]:
    """Simulate (or reuse) a world and compare the oracles and a model on the same rows."""
    from lifecycle.features.build import build_features
    from lifecycle.training.labels import build_labels, observation_end
    from lifecycle.training.metrics import classification_metrics
    from lifecycle.training.splits import time_split

    folder = CACHE / f"sim-{customers}-{seed}-{days}"
    if not (folder / "truth.parquet").exists():
        log(f"simulating {customers:,} customers")
        sim.simulate(customers, seed=seed, start="2024-01-01", out_dir=folder, days=days)
    events = pd.read_parquet(folder / "events.parquet")
    truth = pd.read_parquet(folder / "truth.parquet")
    campaigns = pd.read_parquet(folder / "campaigns.parquet") if offers else None
    end = observation_end(folder / "events.parquet")
    grid = sorted(c for c in pd.to_datetime(truth["as_of"].unique(), utc=True) if c < end)
    cutoffs = {
        name: time_split(grid, horizon_days=h, end=end).eval for name, _, h, _ in EVALUATIONS
    }
    out: dict[str, Any] = {"customers": customers, "days": days, "seed": seed}
    model_scores: dict[str, pd.Series] = {}
    if trials is not None:
        from lifecycle.training.config import TrainingConfig, TuningSettings
        from lifecycle.training.pipeline import run_training

        config = TrainingConfig(
            tasks=("next_stage", "churn"),
            baselines=(),
            report_customer_split=False,
            tuning=TuningSettings(trials=trials),
            seed=seed,
        )
        began = time.perf_counter()
        try:
            result = run_training(
                folder / "events.parquet", config=config, truth=truth, progress=log
            )
        except Exception as exc:  # the oracles still run; the JSON records why
            log(f"model skipped: training failed: {exc!r}")
            out["model_error"] = repr(exc)
            result = None
        out["model_seconds"] = round(time.perf_counter() - began, 1)
        for name, task, _, _ in EVALUATIONS[:2] if result is not None else ():
            res = result.tasks[task]
            if res.split.eval != cutoffs[name]:
                raise RuntimeError(f"{task}: training evaluated at {res.split.eval}")
            frame = res.evaluation
            model_scores[name] = frame.set_index(frame["customer_id"].astype(str))["score_model"]

    features = build_features(events, cutoffs=sorted(set(cutoffs.values())))
    for name, task, horizon, column in EVALUATIONS:
        cutoff = cutoffs[name]
        rows = features[features["cutoff"] == cutoff].reset_index(drop=True)
        labels = build_labels(events, rows, task=task, horizon_days=horizon, end=end)
        keep = np.isfinite(labels)
        rows = rows[keep].reset_index(drop=True)
        rows["label"] = labels[keep]
        ids = rows["customer_id"].astype(str)
        y = rows["label"].to_numpy()
        at = truth[pd.to_datetime(truth["as_of"], utc=True) == cutoff]
        latent = at.set_index("customer_id")[column].reindex(ids).to_numpy(dtype=np.float64)
        log(f"{name}: observed oracle on {len(rows):,} rows at {cutoff.date()}")
        observed = observed_oracle_auc(
            events,
            truth,
            rows,
            cutoff=cutoff,
            column=column,
            draws=draws,
            replicates=replicates,
            seed=seed,
            rounds=rounds,
            campaigns=campaigns,
        )
        trivial = _trivial_score(task, rows)
        entry: dict[str, Any] = {
            "cutoff": cutoff.isoformat(),
            "horizon_days": horizon,
            "rows": len(rows),
            "positive_rate": float(y.mean()),
            "latent_oracle": classification_metrics(y, latent)["roc_auc"],
            "observed_oracle": observed,
            "trivial": {
                "score": "n_events_30d" if task == "next_stage" else "days_since_last_purchase",
                "roc_auc": classification_metrics(y, (trivial - trivial.min()) / np.ptp(trivial))[
                    "roc_auc"
                ],
            },
        }
        if name in model_scores:
            score = model_scores[name].reindex(ids).to_numpy(dtype=np.float64)
            ok = np.isfinite(score)
            entry["model"] = {
                "roc_auc": classification_metrics(y[ok], score[ok])["roc_auc"],
                "rows": int(ok.sum()),
            }
        out[name] = entry
    return out


def render(result: dict[str, Any]) -> str:
    """Return the AUC table of :func:`bench` as Markdown."""
    lines = [
        f"ROC AUC, simulated world of {result['customers']:,} customers over "
        f"{result['days']} days (time-honest evaluation cutoff)",
        "",
        "| target | rows | latent oracle | observed oracle | model | trivial | "
        "latent - observed | observed - model |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, *_ in EVALUATIONS:
        e = result[name]
        obs = e["observed_oracle"]
        model = e.get("model", {}).get("roc_auc", float("nan"))
        lines.append(
            f"| {name} | {e['rows']:,} | {e['latent_oracle']:.4f} | "
            f"{obs['roc_auc']:.4f} +- {obs['mc_sd']:.4f} | {model:.4f} | "
            f"{e['trivial']['roc_auc']:.4f} | {e['latent_oracle'] - obs['roc_auc']:.4f} | "
            f"{obs['roc_auc'] - model:.4f} |"
        )
    lines.append("")
    lines.append(
        "observed oracle: AUC of the mean of the replicates' probabilities +- the standard "
        "deviation of one replicate's AUC (Monte Carlo)."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--days", type=int, default=1460)
    parser.add_argument("--draws", type=int, default=256, help="draws per customer and round")
    parser.add_argument("--rounds", type=int, default=2, help="adaptive rounds after the pilot")
    parser.add_argument("--replicates", type=int, default=2, help="independent MC replicates")
    parser.add_argument("--trials", type=int, default=0, help="Optuna trials of the model")
    parser.add_argument("--no-model", action="store_true", help="skip the LightGBM model")
    parser.add_argument(
        "--offers", action="store_true", help="read treated offers from campaigns.parquet"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    result = bench(
        args.customers,
        seed=args.seed,
        days=args.days,
        draws=args.draws,
        rounds=args.rounds,
        replicates=args.replicates,
        trials=None if args.no_model else args.trials,
        offers=args.offers,
    )
    result["wall_seconds"] = round(time.perf_counter() - began, 1)
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["machine"] = f"{platform.machine()}, {__import__('os').cpu_count()} cores"
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"observed-oracle-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    print(render(result))
    print(f"-> {path} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
