"""BTYD closed forms: likelihoods, fits against lifetimes and pymc-marketing, predictions."""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from lifecycle.models import btyd
from lifecycle.models.btyd import (
    BtydParams,
    bgnbd_log_likelihood,
    count_pmf,
    count_pmf_table,
    count_upper,
    expected_purchases,
    expected_spend,
    fit_btyd,
    log_likelihood,
    p_alive,
    pareto_nbd_log_likelihood,
    spend_shape,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CDNOW_SUMMARY = DATA / "cdnow" / "cdnow_customers_summary_with_transactions.csv"
needs_cdnow = pytest.mark.skipif(
    not CDNOW_SUMMARY.is_file(), reason=f"CDNOW calibration summary not found at {CDNOW_SUMMARY}"
)

WEEK = 7.0
BG_TRUE = {"r": 0.8, "alpha": 10.0, "a": 0.8, "b": 3.0}  # alpha in weeks
PARETO_TRUE = {"r": 0.6, "alpha": 8.0, "s": 0.7, "beta": 20.0}
# Published fits on the CDNOW 1/10 sample, weeks (Fader, Hardie & Lee 2005; lifetimes docs)
CDNOW_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_PARETO = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
CDNOW_GG = {"p": 6.25, "q": 3.74, "v": 15.44}

BG = BtydParams(model="bgnbd", **CDNOW_BG, **CDNOW_GG)
BG_A_ABOVE_1 = BtydParams(model="bgnbd", r=1.3, alpha=6.0, a=2.5, b=7.0)
PARETO = BtydParams(model="pareto_nbd", **CDNOW_PARETO, **CDNOW_GG)
PARETO_S_1 = BtydParams(model="pareto_nbd", r=2.0, alpha=3.0, s=1.0, beta=40.0)
ALL_PARAMS = [BG, BG_A_ABOVE_1, PARETO, PARETO_S_1]
PARAM_IDS = ["bgnbd-cdnow", "bgnbd-a>1", "pareto-cdnow", "pareto-s=1"]

# (x, t_x, T) in days: one-time buyers young and old, and repeaters recent and lapsed
HISTORIES = np.array(
    [
        [0, 0, 30],
        [0, 0, 400],
        [1, 10, 20],
        [3, 150, 300],
        [3, 40, 300],
        [12, 340, 360],
        [40, 700, 730],
    ],
    dtype=float,
).T


def simulate_bgnbd(
    n: int, seed: int, *, r: float, alpha: float, a: float, b: float, max_days: int = 730
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in days from the BG/NBD process, alpha in weeks, cohorts over two years."""
    rng = np.random.default_rng(seed)
    T = rng.integers(1, max_days + 1, n).astype(float)
    lam = rng.gamma(r, 1.0 / alpha, n) / WEEK
    p = rng.beta(a, b, n)
    events = rng.poisson(lam * T)
    # repeat purchases made before dropping out: P(K >= k) = (1 - p)^(k - 1)
    repeats = np.minimum(events, rng.geometric(p))
    # the x-th of `events` uniform purchase times
    t_x = np.where(repeats > 0, T * rng.beta(np.maximum(repeats, 1), events - repeats + 1), 0.0)
    return repeats.astype(float), t_x, T


def simulate_pareto_nbd(
    n: int, seed: int, *, r: float, alpha: float, s: float, beta: float, max_days: int = 730
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in days from the Pareto/NBD process, alpha and beta in weeks."""
    rng = np.random.default_rng(seed)
    T = rng.integers(1, max_days + 1, n).astype(float)
    lam = rng.gamma(r, 1.0 / alpha, n) / WEEK
    mu = rng.gamma(s, 1.0 / beta, n) / WEEK
    active = np.minimum(rng.exponential(1.0 / mu), T)
    x = rng.poisson(lam * active)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    return x.astype(float), t_x, T


@pytest.fixture(scope="module")
def bg_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return simulate_bgnbd(3000, 1, **BG_TRUE)


@pytest.fixture(scope="module")
def pareto_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return simulate_pareto_nbd(3000, 2, **PARETO_TRUE)


@pytest.fixture(scope="module")
def bg_fit(bg_sample) -> BtydParams:
    return fit_btyd(*bg_sample, None)


@pytest.fixture(scope="module")
def pareto_fit(pareto_sample) -> BtydParams:
    return fit_btyd(*pareto_sample, None)


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    if not CDNOW_SUMMARY.is_file():
        pytest.skip(f"CDNOW calibration summary not found at {CDNOW_SUMMARY}")
    return pd.read_csv(CDNOW_SUMMARY)


@pytest.fixture(scope="module")
def cdnow_fit(cdnow) -> BtydParams:
    days = cdnow[["t_x", "T"]] * WEEK
    return fit_btyd(cdnow["x"], days["t_x"], days["T"], cdnow["zbar"])


def _model_params(params: BtydParams) -> dict[str, float]:
    names = ("r", "alpha", "a", "b") if params.model == "bgnbd" else ("r", "alpha", "s", "beta")
    return {name: getattr(params, name) for name in names}


def _total_ll(model: str, x, t_x_weeks, T_weeks, values: dict[str, float]) -> float:
    function = bgnbd_log_likelihood if model == "bgnbd" else pareto_nbd_log_likelihood
    return float(function(x, t_x_weeks, T_weeks, **values).sum())


# ---------------------------------------------------------------------------------------------
# likelihoods


@needs_cdnow
def test_bgnbd_log_likelihood_matches_published_cdnow_total(cdnow):
    total = _total_ll("bgnbd", cdnow["x"], cdnow["t_x"], cdnow["T"], CDNOW_BG)
    assert total == pytest.approx(-9582.4, abs=0.1)


def _pareto_reference(x, t_x, T, r, alpha, s, beta) -> float:
    """Pareto/NBD log-likelihood with the death-time integral by adaptive quadrature."""
    log_const = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha)
    log_alive = -(r + x) * math.log(alpha + T) + s * math.log(beta / (beta + T))
    # scale the integrand by its value at t_x so quad works on numbers near 1
    log_scale = -(r + x) * math.log(alpha + t_x) - (s + 1) * math.log(beta + t_x)

    def integrand(tau: float) -> float:
        log_f = -(r + x) * math.log(alpha + tau) - (s + 1) * math.log(beta + tau)
        return math.exp(log_f - log_scale)

    peak = t_x + 10 * min((alpha + t_x) / (r + x), (beta + t_x) / (s + 1))
    points = [peak] if t_x < peak < T else None
    value, _ = integrate.quad(integrand, t_x, T, epsabs=0, epsrel=1e-13, limit=500, points=points)
    log_died = math.log(s) + s * math.log(beta) + log_scale + math.log(value)
    return log_const + float(np.logaddexp(log_alive, log_died))


@pytest.mark.parametrize(
    "values",
    [
        CDNOW_PARETO,
        {"r": 2.0, "alpha": 1.0, "s": 5.0, "beta": 0.3},
        {"r": 0.1, "alpha": 50.0, "s": 0.2, "beta": 500.0},
        {"r": 5.0, "alpha": 0.5, "s": 0.05, "beta": 2.0},
    ],
)
def test_pareto_log_likelihood_quadrature_matches_adaptive_quad(values):
    # weeks: one-time buyers, repeaters of all kinds, a heavy buyer who stopped long ago
    cases = [(0, 0, 0.5), (0, 0, 100), (1, 0.1, 0.2), (3, 20, 38), (7, 2, 90), (100, 10, 104)]
    ours = pareto_nbd_log_likelihood(*np.array(cases, dtype=float).T, **values)
    reference = [_pareto_reference(*case, **values) for case in cases]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    ("function", "values"),
    [
        (btyd._bgnbd_loglik_grad, (0.243, 4.414, 0.793, 2.426)),
        (btyd._pareto_loglik_grad, (0.55, 10.58, 0.61, 11.67)),
        (btyd._pareto_loglik_grad, (2.0, 1.0, 5.0, 0.3)),
        (btyd._gamma_gamma_loglik_grad, (6.25, 3.74, 15.44)),
    ],
)
def test_log_likelihood_gradients_match_finite_differences(function, values, bg_sample):
    x, t_x, T = bg_sample[0], bg_sample[1] / WEEK, bg_sample[2] / WEEK
    data = (x + 1.0, np.linspace(5.0, 80.0, x.size)) if len(values) == 3 else (x, t_x, T)
    _, grad = function(*data, values)
    for i, value in enumerate(values):
        step = 1e-6 * value
        up, down = list(values), list(values)
        up[i] += step
        down[i] -= step
        numeric = (function(*data, up)[0].sum() - function(*data, down)[0].sum()) / (2 * step)
        assert grad[i].sum() == pytest.approx(numeric, rel=1e-5, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# fitting


@pytest.mark.parametrize(
    ("sample", "truth", "model"),
    [("bg_sample", BG_TRUE, "bgnbd"), ("pareto_sample", PARETO_TRUE, "pareto_nbd")],
)
def test_fit_btyd_picks_the_generating_model_by_likelihood(sample, truth, model, request):
    x, t_x, T = request.getfixturevalue(sample)
    params = fit_btyd(x, t_x, T, None)
    assert params.model == model
    assert params.log_likelihood[model] == max(params.log_likelihood.values())
    assert params.customers == x.size and params.time_unit_days == WEEK
    # a maximum: the generating parameters do no better than the fit on the same data
    assert _total_ll(model, x, t_x / WEEK, T / WEEK, truth) <= params.log_likelihood[model]
    assert log_likelihood(params, x, t_x, T).sum() == pytest.approx(params.log_likelihood[model])
    for name, value in truth.items():  # 3,000 customers: sampling error well under 50 %
        assert getattr(params, name) == pytest.approx(value, rel=0.5)


def test_fit_btyd_single_candidate_and_spend(bg_sample):
    x, t_x, T = bg_sample
    rng = np.random.default_rng(3)
    nu = rng.gamma(3.0, 1.0 / 40.0, x.size)  # per-customer Gamma-Gamma scale
    monetary = rng.gamma(2.0 * (x + 1), 1.0 / ((x + 1) * nu))  # mean of x + 1 Gamma(2, nu)
    monetary[::7] = np.nan  # unknown spend is left out of the Gamma-Gamma fit
    params = fit_btyd(x, t_x, T, monetary, candidates=("pareto_nbd",))
    assert params.model == "pareto_nbd" and set(params.log_likelihood) == {"pareto_nbd"}
    assert params.a is None and params.b is None
    assert params.p == pytest.approx(2.0, rel=0.25)
    assert params.q == pytest.approx(3.0, rel=0.4)
    assert params.v == pytest.approx(40.0, rel=0.5)
    assert spend_shape(params) == params.p


@needs_cdnow
def test_fit_btyd_reproduces_published_cdnow_fits(cdnow, cdnow_fit):
    assert cdnow_fit.model == "bgnbd"
    for name, value in CDNOW_BG.items():
        assert getattr(cdnow_fit, name) == pytest.approx(value, rel=2e-3)
    assert cdnow_fit.log_likelihood["bgnbd"] == pytest.approx(-9582.4, abs=0.1)
    days = cdnow[["t_x", "T"]] * WEEK
    pareto = fit_btyd(cdnow["x"], days["t_x"], days["T"], None, candidates=["pareto_nbd"])
    for name, value in CDNOW_PARETO.items():
        assert getattr(pareto, name) == pytest.approx(value, rel=2e-3)
    assert pareto.log_likelihood["pareto_nbd"] == cdnow_fit.log_likelihood["pareto_nbd"]


@needs_cdnow
def test_gamma_gamma_reproduces_published_cdnow_fit(cdnow):
    # the textbook fit: repeat transactions only (fit_btyd counts the first purchase too)
    repeat = cdnow["x"].to_numpy() > 0
    n = cdnow["x"].to_numpy(float)[repeat]
    p, q, v = btyd._fit_gamma_gamma(n, cdnow["zbar"].to_numpy(float)[repeat])
    assert (p, q, v) == pytest.approx(tuple(CDNOW_GG.values()), rel=2e-3)


def test_fit_btyd_is_deterministic_and_fast_on_20000_customers():
    x, t_x, T = simulate_pareto_nbd(20_000, 5, **PARETO_TRUE)
    fit_btyd(x[:100], t_x[:100], T[:100], None)  # warm caches
    start = time.perf_counter()
    first = fit_btyd(x, np.round(t_x), T, None)
    elapsed = time.perf_counter() - start
    print(f"fit_btyd, both models, 20,000 customers: {elapsed:.2f} s")
    assert first == fit_btyd(x, np.round(t_x), T, None)
    assert elapsed < 3.0  # ~0.5-0.7 s alone on 2 cores; slack for a busy test machine


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        (np.ones(5), np.ones(5), np.full(5, 2.0), "at least 20 customers"),
        (np.zeros(50), np.zeros(50), np.full(50, 30.0), "no customer has x > 0"),
        (np.ones(50), np.full(50, 40.0), np.full(50, 30.0), "t_x <= T"),
        (np.zeros(50), np.ones(50), np.full(50, 30.0), "t_x must be 0 where x == 0"),
        (np.full(50, 1.5), np.ones(50), np.full(50, 30.0), "whole numbers"),
        (np.r_[np.nan, np.ones(49)], np.ones(50), np.full(50, 30.0), "finite"),
    ],
)
def test_fit_btyd_rejects_too_little_or_inconsistent_data(x, t_x, T, message):
    with pytest.raises(ValueError, match=message):
        fit_btyd(x, t_x, T, None)


def test_fit_btyd_rejects_unknown_candidates(bg_sample):
    with pytest.raises(ValueError, match="candidates"):
        fit_btyd(*bg_sample, None, candidates=("bgnbd", "mbgnbd"))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="candidates"):
        fit_btyd(*bg_sample, None, candidates=())


def test_fit_btyd_leaves_spend_out_with_too_few_spenders(bg_sample):
    x, t_x, T = bg_sample
    monetary = np.zeros_like(x)
    monetary[:19] = 10.0
    params = fit_btyd(x, t_x, T, monetary)
    assert (params.p, params.q, params.v) == (None, None, None) and not params.has_spend
    with pytest.raises(ValueError, match="no Gamma-Gamma"):
        expected_spend(params, [1.0], [10.0])


@pytest.mark.parametrize("params", ALL_PARAMS, ids=PARAM_IDS)
def test_params_round_trip_through_json(params):
    record = json.loads(json.dumps(params.to_dict()))
    assert BtydParams.from_dict(record) == params


def test_params_round_trip_of_a_fit(bg_fit):
    assert BtydParams.from_dict(json.loads(json.dumps(bg_fit.to_dict()))) == bg_fit


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "bgnbd", "r": 1.0, "alpha": 1.0, "a": 1.0}, "positive finite b"),
        ({"model": "gamma", "r": 1.0, "alpha": 1.0}, "model must be"),
        ({"model": "pareto_nbd", "r": 1.0, "alpha": 1.0, "s": 1.0, "beta": -1.0}, "beta"),
        (
            {"model": "pareto_nbd", "r": 1.0, "alpha": 1.0, "s": 1.0, "beta": 1.0, "q": 2.0},
            "Gamma-Gamma",
        ),
        ({"model": "bgnbd", "r": 1.0, "alpha": 1.0, "a": 1.0, "b": 1.0, "x": 1}, "unknown"),
    ],
)
def test_params_from_dict_rejects_invalid_records(fields, message):
    with pytest.raises(ValueError, match=message):
        BtydParams.from_dict(fields)


# ---------------------------------------------------------------------------------------------
# references: lifetimes and pymc-marketing


def _reference_datasets(request) -> list[tuple[str, str, tuple[np.ndarray, ...]]]:
    """(name, generating model, (x, t_x days, T days)) for the library comparisons."""
    pareto = request.getfixturevalue("pareto_sample")
    datasets = [
        ("simulated BG/NBD", "bgnbd", request.getfixturevalue("bg_sample")),
        # 1,000 customers: lifetimes' Nelder-Mead Pareto/NBD fit takes seconds on more
        ("simulated Pareto/NBD", "pareto_nbd", tuple(a[:1000] for a in pareto)),
    ]
    if CDNOW_SUMMARY.is_file():
        cdnow = pd.read_csv(CDNOW_SUMMARY)
        summary = (cdnow["x"].to_numpy(float), *(cdnow[c].to_numpy() * WEEK for c in ("t_x", "T")))
        datasets += [("CDNOW", "bgnbd", summary), ("CDNOW", "pareto_nbd", summary)]
    return datasets


def _assert_agrees(model, x, t_x_days, T_days, theirs: dict[str, float], label: str) -> None:
    """Our fit of ``model`` matches ``theirs`` and is at least as likely."""
    ours = fit_btyd(x, t_x_days, T_days, None, candidates=(model,))
    t_x, T = t_x_days / WEEK, T_days / WEEK
    mine = _model_params(ours)
    print(
        label,
        {k: round(v, 4) for k, v in mine.items()},
        {k: round(v, 4) for k, v in theirs.items()},
    )
    for name, value in theirs.items():
        assert mine[name] == pytest.approx(value, rel=1e-2), (label, name)
    assert _total_ll(model, x, t_x, T, theirs) <= ours.log_likelihood[model] + 1e-3


def test_fit_btyd_agrees_with_lifetimes(request):
    lifetimes = pytest.importorskip("lifetimes", reason="lifetimes is in the `bench` group only")
    fitters = {"bgnbd": lifetimes.BetaGeoFitter, "pareto_nbd": lifetimes.ParetoNBDFitter}
    for name, model, (x, t_x, T) in _reference_datasets(request):
        with np.errstate(all="ignore"):
            fitter = fitters[model]().fit(x, t_x / WEEK, T / WEEK)
        theirs = {k: float(v) for k, v in fitter.params_.items()}
        _assert_agrees(model, x, t_x, T, theirs, f"lifetimes {model} on {name}")


@pytest.mark.slow
def test_fit_btyd_agrees_with_pymc_marketing(request):
    if importlib.util.find_spec("pymc_marketing") is None:
        pytest.skip("pymc-marketing not installed (optional extra 'baselines')")
    import pymc
    import pytensor
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel
    from pymc_marketing.clv.distributions import ParetoNBD

    # one small data set: CDNOW when present, else the simulated BG/NBD summary
    datasets = _reference_datasets(request)
    name, _, (x, t_x, T) = datasets[2] if len(datasets) > 2 else datasets[0]
    frame = pd.DataFrame(
        {"customer_id": np.arange(x.size), "frequency": x, "recency": t_x / WEEK, "T": T / WEEK}
    )
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        library = BetaGeoModel(
            model_config={n: Prior("HalfFlat") for n in ("r", "alpha", "a", "b")}
        )
        library.fit(frame, method="map", progressbar=False, seed=0)
        theirs = {n: float(library.fit_result[n].mean()) for n in ("r", "alpha", "a", "b")}
        _assert_agrees("bgnbd", x, t_x, T, theirs, f"pymc-marketing bgnbd on {name}")

        # ParetoNBDModel's MAP fit differentiates hyp2f1 through a series that runs for
        # minutes in FAST_COMPILE, so compare the likelihood itself, the library's closed form
        # against our quadrature, at our maximum and at parameters far from it.
        ours = fit_btyd(x, t_x, T, None, candidates=("pareto_nbd",))
        for values in (_model_params(ours), {"r": 2.0, "alpha": 1.0, "s": 5.0, "beta": 0.3}):
            dist = ParetoNBD.dist(T=T / WEEK, **values)
            library_ll = pymc.logp(dist, np.stack([t_x / WEEK, x], axis=1)).eval()
            mine = pareto_nbd_log_likelihood(x, t_x / WEEK, T / WEEK, **values)
            np.testing.assert_allclose(mine, library_ll, rtol=0, atol=1e-6)


def test_predictions_agree_with_lifetimes():
    lifetimes = pytest.importorskip("lifetimes", reason="lifetimes is in the `bench` group only")
    x, t_x, T = HISTORIES
    weeks = (x, t_x / WEEK, T / WEEK)
    for params, fitter in ((BG, lifetimes.BetaGeoFitter()), (PARETO, lifetimes.ParetoNBDFitter())):
        fitter.params_ = pd.Series(_model_params(params))
        np.testing.assert_allclose(
            p_alive(params, x, t_x, T), fitter.conditional_probability_alive(*weeks), rtol=1e-6
        )
        theirs = fitter.conditional_expected_number_of_purchases_up_to_time(52.0, *weeks)
        ours = expected_purchases(params, x, t_x, T, 52.0 * WEEK)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# predictions


@pytest.mark.parametrize("params", ALL_PARAMS, ids=PARAM_IDS)
@pytest.mark.parametrize("horizon_days", [30.0, 365.0])
def test_count_pmf_sums_to_one_and_its_mean_is_expected_purchases(params, horizon_days):
    x, t_x, T = HISTORIES
    k = np.arange(3000.0)[:, None]
    pmf = count_pmf(params, x, t_x, T, horizon_days, k)
    assert pmf.shape == (3000, x.size) and np.all(pmf >= 0)
    np.testing.assert_allclose(pmf.sum(axis=0), 1.0, rtol=0, atol=1e-9)
    mean = expected_purchases(params, x, t_x, T, horizon_days)
    np.testing.assert_allclose((k * pmf).sum(axis=0), mean, rtol=1e-6)


def test_bgnbd_no_purchase_probability_matches_baseline_formula():
    from lifecycle.models.baselines import BetaGeoGammaGammaBaseline

    baseline = BetaGeoGammaGammaBaseline()
    baseline.params_ = dict(CDNOW_BG)
    x, t_x, T = HISTORIES
    summary = pd.DataFrame({"frequency": x, "recency": t_x / WEEK, "T": T / WEEK})
    for horizon in (7.0, 90.0, 365.0):
        expected = baseline._probability_no_purchase(summary, horizon / WEEK)
        np.testing.assert_allclose(count_pmf(BG, x, t_x, T, horizon, 0), expected, rtol=1e-12)


def _simulate_next_counts(
    params: BtydParams, history: tuple[float, float, float], horizon_days: float, draws: int
) -> tuple[np.ndarray, np.ndarray]:
    """Purchase counts in the horizon and importance weights, from the individual-level model.

    Draw the rates from the population prior, weight each draw by the individual likelihood of
    the history, decide alive or dropped out in proportion to the two parts of it, and simulate
    the horizon forward: independent of the posterior algebra in count_pmf.
    """
    rng = np.random.default_rng(11)
    x, t_x, T = history[0], history[1] / WEEK, history[2] / WEEK
    t = horizon_days / WEEK
    lam = rng.gamma(params.r, 1.0 / params.alpha, draws)
    if params.model == "bgnbd":
        p = rng.beta(params.a, params.b, draws)
        alive = x * np.log1p(-p) + x * np.log(lam) - lam * T
        dropped = np.log(p) + (x - 1) * np.log1p(-p) + x * np.log(lam) - lam * t_x
        dropped = dropped if x > 0 else np.full(draws, -np.inf)
        # after each purchase the customer drops out with probability p
        future = np.minimum(rng.poisson(lam * t), rng.geometric(p))
    else:
        mu = rng.gamma(params.s, 1.0 / params.beta, draws)
        alive = x * np.log(lam) - (lam + mu) * T
        dropped = (
            x * np.log(lam)
            + np.log(mu / (lam + mu))
            - (lam + mu) * t_x
            + np.log(-np.expm1(-(lam + mu) * (T - t_x)))
        )
        future = rng.poisson(lam * np.minimum(rng.exponential(1.0 / mu), t))
    log_weight = np.logaddexp(alive, dropped)
    is_alive = rng.random(draws) < np.exp(alive - log_weight)
    weight = np.exp(log_weight - log_weight.max())
    return np.where(is_alive, future, 0), weight


@pytest.mark.parametrize("params", [BG, PARETO], ids=["bgnbd", "pareto_nbd"])
def test_count_pmf_matches_monte_carlo_of_the_model(params):
    horizon = 182.0
    for history in [(0.0, 0.0, 273.0), (2.0, 213.0, 272.0), (5.0, 100.0, 272.0)]:
        counts, weight = _simulate_next_counts(params, history, horizon, 400_000)
        effective = weight.sum() ** 2 / (weight**2).sum()
        k = np.arange(5)
        simulated = np.array([weight[counts == j].sum() for j in k]) / weight.sum()
        ours = count_pmf(params, *history, horizon, k)
        error = 5 * np.sqrt(simulated * (1 - simulated) / effective) + 1e-3
        assert np.all(np.abs(ours - simulated) < error), (history, ours, simulated, effective)
        mean = float((weight * counts).sum() / weight.sum())
        assert expected_purchases(params, *history, horizon) == pytest.approx(mean, rel=0.05)


def test_pareto_count_pmf_quadrature_matches_adaptive_quad():
    params, (x, t_x, T), horizon = PARETO, (3.0, 150.0, 300.0), 365.0
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    t, Tw = horizon / WEEK, T / WEEK

    def nb(k: int, exposure: float) -> float:
        q = (alpha + Tw) / (alpha + Tw + exposure)
        return math.exp(
            special.gammaln(r + x + k)
            - special.gammaln(r + x)
            - special.gammaln(k + 1)
            + (r + x) * math.log(q)
            + special.xlogy(k, 1 - q)
        )

    alive = float(p_alive(params, x, t_x, T))
    for k in (0, 1, 4, 15):
        dies = integrate.quad(
            lambda tau, k=k: (
                s / (beta + Tw + tau) * ((beta + Tw) / (beta + Tw + tau)) ** s * nb(k, tau)
            ),
            0,
            t,
            epsabs=1e-14,
            limit=200,
        )[0]
        reference = alive * (((beta + Tw) / (beta + Tw + t)) ** s * nb(k, t) + dies)
        reference += (1 - alive) * (k == 0)
        assert float(count_pmf(params, x, t_x, T, horizon, k)) == pytest.approx(reference, rel=1e-8)


@pytest.mark.parametrize("params", ALL_PARAMS, ids=PARAM_IDS)
def test_count_pmf_table_folds_the_tail_into_the_last_column(params):
    x, t_x, T = HISTORIES
    kmax = count_upper(params, x, t_x, T, 365.0, q=0.999)
    table = count_pmf_table(params, x, t_x, T, 365.0, kmax)
    assert table.shape == (x.size, kmax + 1)
    np.testing.assert_allclose(table.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    pmf = count_pmf(params, x, t_x, T, 365.0, np.arange(kmax)[:, None]).T
    np.testing.assert_allclose(table[:, :kmax], pmf, rtol=1e-12, atol=1e-15)
    assert np.all(table[:, kmax] <= 1 - 0.999)
    # the smallest such kmax: one fewer leaves more than 1 - q in the tail for some customer
    shorter = count_pmf_table(params, x, t_x, T, 365.0, kmax - 1)
    assert np.any(shorter[:, -1] > 1 - 0.999)
    assert count_pmf_table(params, x, t_x, T, 365.0, 0).tolist() == [[1.0]] * x.size


def test_count_upper_is_capped():
    heavy = BtydParams(model="pareto_nbd", r=50.0, alpha=1.0, s=0.1, beta=100.0)
    assert count_upper(heavy, [300.0], [700.0], [730.0], 3650.0, cap=100) == 100
    assert count_upper(heavy, [300.0], [700.0], [730.0], 0.0) == 1  # P(N >= 1) = 0
    assert count_upper(heavy, [], [], [], 90.0) == 0


@pytest.mark.parametrize("params", [BG, PARETO], ids=["bgnbd", "pareto_nbd"])
def test_longer_silence_lowers_p_alive_and_raises_no_purchase(params):
    T = np.linspace(100.0, 5 * 365.0, 200)  # last purchase at day 100, cut-off up to 5 years
    x, t_x = np.full_like(T, 3.0), np.full_like(T, 100.0)
    alive = p_alive(params, x, t_x, T)
    none = count_pmf(params, x, t_x, T, 90.0, 0)
    assert np.all(np.diff(alive) <= 0) and alive[-1] < 0.5 * alive[0]
    assert np.all(np.diff(none) >= 0) and none[-1] > none[0]


def _equation_10(params: BtydParams, x, t_x, T, horizon_days: float) -> np.ndarray:
    """Fader, Hardie & Lee (2005) equation (10), with scipy's hyp2f1."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t_x, T, t = t_x / WEEK, T / WEEK, horizon_days / WEEK
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
    odds = np.where(
        x > 0, a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0
    )
    return (a + b + x - 1) / (a - 1) * bracket / (1 + odds)


@pytest.mark.parametrize("params", [BG, BG_A_ABOVE_1], ids=["cdnow", "a>1"])
@pytest.mark.parametrize("horizon_days", [7.0, 90.0, 365.0])
def test_bgnbd_expected_purchases_is_equation_10(params, horizon_days):
    x, t_x, T = HISTORIES
    expected = _equation_10(params, x, t_x, T, horizon_days)
    np.testing.assert_allclose(
        expected_purchases(params, x, t_x, T, horizon_days), expected, rtol=1e-10
    )


def _beta_expectation(g, a: float, b: float, breaks: list[float]) -> float:
    """E[g(p)], p ~ Beta(a, b), by adaptive quadrature over log(p / (1 - p)) with break points."""

    def integrand(logit: float) -> float:
        log_p, log_1mp = -np.logaddexp(0.0, -logit), -np.logaddexp(0.0, logit)
        return g(math.exp(log_p)) * math.exp(a * log_p + b * log_1mp - special.betaln(a, b))

    mode = math.log(a / b)
    points = sorted([mode, mode - 3 / math.sqrt(a), mode + 3 / math.sqrt(b), *breaks])
    low, high = points[0] - 60 / a, points[-1] + 60 / min(b, 1.0)
    return integrate.quad(integrand, low, high, points=points, epsabs=0, epsrel=1e-12, limit=2000)[
        0
    ]


@pytest.mark.parametrize(
    "values",
    [
        {"a": 0.3, "b": 0.5},  # a + b + x - 1 < 0 at x = 0
        {"a": 0.05, "b": 0.2},
        {"a": 1.0, "b": 3.0},  # equation 10 divides by a - 1
        {"a": 20.0, "b": 0.3},
        {"a": 3.0, "b": 1000.0},
    ],
)
def test_bgnbd_expected_purchases_where_hyp2f1_fails_matches_adaptive_quad(values):
    params = BtydParams(model="bgnbd", r=0.2, alpha=0.5, **values)
    x, t_x, T = HISTORIES
    horizon = 3650.0
    reference = []
    for x_i, T_i in zip(x, T / WEEK, strict=True):
        m, theta = params.r + x_i, horizon / WEEK / (params.alpha + T_i)

        def g(p: float, m=m, theta=theta) -> float:  # E[N | alive, p], lambda integrated out
            return -math.expm1(-m * math.log1p(p * theta)) / p if p > 0 else m * theta

        reference.append(_beta_expectation(g, params.a, params.b + x_i, [-math.log(theta)]))
    ours = expected_purchases(params, x, t_x, T, horizon)
    np.testing.assert_allclose(ours, p_alive(params, x, t_x, T) * reference, rtol=1e-7)


def test_pareto_expected_purchases_is_continuous_at_s_equal_1():
    x, t_x, T = HISTORIES
    values = [
        expected_purchases(
            BtydParams(model="pareto_nbd", r=2.0, alpha=3.0, s=s, beta=40.0), x, t_x, T, 90.0
        )
        for s in (1.0 - 1e-9, 1.0, 1.0 + 1e-9)
    ]
    np.testing.assert_allclose(values, [values[1]] * 3, rtol=1e-7)


def test_predictions_at_a_zero_horizon():
    x, t_x, T = HISTORIES
    for params in ALL_PARAMS:
        np.testing.assert_array_equal(expected_purchases(params, x, t_x, T, 0.0), 0.0)
        np.testing.assert_allclose(count_pmf(params, x, t_x, T, 0.0, 0), 1.0)


def test_prediction_inputs_are_checked():
    with pytest.raises(ValueError, match="horizon_days"):
        expected_purchases(BG, [1.0], [1.0], [2.0], -1.0)
    with pytest.raises(ValueError, match="k must be"):
        count_pmf(BG, [1.0], [1.0], [2.0], 10.0, -1)
    with pytest.raises(ValueError, match="t_x <= T"):
        p_alive(PARETO, [1.0], [3.0], [2.0])
    with pytest.raises(ValueError, match="q must be"):
        count_upper(BG, [1.0], [1.0], [2.0], 10.0, q=1.0)


def test_expected_spend_is_the_gamma_gamma_posterior_mean():
    p, q, v = CDNOW_GG.values()
    n = np.array([1.0, 2.0, 5.0, 30.0])
    monetary = np.array([20.0, 80.0, 35.0, 10.0])

    def posterior_mean(n_: float, m: float) -> float:
        # E[p / nu | n transactions of mean m]: nu's prior Gamma(q, v) times the likelihood
        # of the mean, nu^(p n) exp(-nu n m), integrated numerically
        log_post = lambda nu: (q + p * n_ - 1) * math.log(nu) - nu * (v + n_ * m)  # noqa: E731
        mode = (q + p * n_ - 1) / (v + n_ * m)
        norm = integrate.quad(lambda nu: math.exp(log_post(nu) - log_post(mode)), 0, np.inf)[0]
        first = integrate.quad(
            lambda nu: p / nu * math.exp(log_post(nu) - log_post(mode)), 0, np.inf
        )[0]
        return first / norm

    expected = [posterior_mean(a, b) for a, b in zip(n, monetary, strict=True)]
    np.testing.assert_allclose(expected_spend(BG, n, monetary), expected, rtol=1e-7)


def test_expected_spend_falls_back_to_the_population_mean_without_nan():
    p, q, v = CDNOW_GG.values()
    spend = expected_spend(BG, [0.0, 3.0, 3.0, 2.0], [15.0, np.nan, 0.0, -4.0])
    np.testing.assert_allclose(spend, v * p / (q - 1))
    assert spend_shape(BG) == p
