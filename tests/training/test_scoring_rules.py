"""Proper scoring rules: closed forms, scipy references and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from lifecycle.models.distribution import compound_cdf
from lifecycle.training.metrics import (
    count_log_score,
    count_pmf_at,
    crps_compound,
    crps_count,
    interval_report,
    pit_coverage,
)


def _poisson_table(lam: np.ndarray, k_max: int) -> np.ndarray:
    k = np.arange(k_max)
    table = np.empty((len(lam), k_max + 1))
    table[:, :k_max] = stats.poisson.pmf(k[None, :], lam[:, None])
    table[:, k_max] = stats.poisson.sf(k_max - 1, lam)
    return table


def _poisson_crps(lam: float, y: int) -> float:
    """Closed form of Wei & Held (2014), "Calibration tests for count data", Test 23."""
    f = stats.poisson
    return float(
        (y - lam) * (2 * f.cdf(y, lam) - 1)
        + 2 * lam * f.pmf(y, lam)
        - lam * math.exp(-2 * lam) * (special.i0(2 * lam) + special.i1(2 * lam))
    )


def _gamma_crps(y: float, a: float, scale: float) -> float:
    """Closed form of the CRPS of Gamma(a, scale) (Scheuerer & Moeller 2015)."""
    g = stats.gamma
    return float(
        y * (2 * g.cdf(y, a, scale=scale) - 1)
        - a * scale * (2 * g.cdf(y, a + 1, scale=scale) - 1)
        - scale / special.beta(0.5, a)
    )


# --- count_log_score and count_pmf_at ---------------------------------------------------------


def test_count_log_score_matches_scipy_poisson_log_pmf():
    rng = np.random.default_rng(0)
    lam = rng.uniform(0.1, 6.0, 300)
    y = rng.poisson(lam)
    table = _poisson_table(lam, 60)
    expected = -stats.poisson.logpmf(y, lam).mean()
    assert count_log_score(count_pmf_at(table, y)) == pytest.approx(expected, rel=1e-10)


def test_count_log_score_floors_impossible_outcomes():
    assert count_log_score([0.0, 1.0], floor=1e-4) == pytest.approx(-math.log(1e-4) / 2)
    assert math.isnan(count_log_score([]))


def test_count_pmf_at_uses_the_tail_beyond_the_table_and_zero_off_the_support():
    table = np.array([[0.5, 0.3, 0.2]] * 4)
    assert count_pmf_at(table, [2, 9, -1, 1.5]).tolist() == [0.2, 0.2, 0.0, 0.0]


# --- crps_count --------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.05, 0.7, 3.0, 12.0])
@pytest.mark.parametrize("y", [0, 1, 4, 20])
def test_crps_count_matches_the_poisson_closed_form(lam, y):
    table = _poisson_table(np.array([lam]), 120)
    assert crps_count(table, [y])[0] == pytest.approx(_poisson_crps(lam, y), abs=1e-10)


def test_crps_count_matches_the_kernel_form_by_monte_carlo():
    rng = np.random.default_rng(1)
    pmf = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    draws = rng.choice(6, size=(2, 400_000), p=pmf)
    for y in (0, 2, 7):
        mc = np.abs(draws[0] - y).mean() - 0.5 * np.abs(draws[0] - draws[1]).mean()
        assert crps_count(pmf[None, :], [y])[0] == pytest.approx(mc, abs=0.005)


@pytest.mark.parametrize("y", [-2.5, 0.0, 0.4, 3.0, 3.7, 11.0])
def test_crps_count_of_a_point_mass_is_the_absolute_error(y):
    table = np.zeros((1, 8))
    table[0, 3] = 1.0
    assert crps_count(table, [y])[0] == pytest.approx(abs(y - 3.0))


def test_crps_count_takes_the_tail_column_as_mass_at_k():
    short = np.array([[0.4, 0.3, 0.3]])  # P(N >= 2) = 0.3, taken as N = 2
    long = np.array([[0.4, 0.3, 0.3, 0.0, 0.0, 0.0]])
    for y in (0.0, 2.0, 5.0, 9.0):
        assert crps_count(short, [y])[0] == pytest.approx(crps_count(long, [y])[0])


# --- crps_compound -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [0.3, 1.0, 4.0])
@pytest.mark.parametrize("y", [0.0, 0.5, 3.0, 25.0])
def test_crps_compound_of_one_purchase_day_is_the_gamma_closed_form(shape, y):
    mean = 2.0
    got = crps_compound([[0.0, 1.0]], [mean], shape, [y])[0]
    assert got == pytest.approx(_gamma_crps(y, shape, mean / shape), rel=1e-9, abs=1e-12)


def test_crps_compound_of_no_purchase_is_the_distance_to_zero():
    got = crps_compound([[1.0, 0.0, 0.0]] * 3, [5.0] * 3, 2.0, [0.0, 7.0, -4.0])
    np.testing.assert_allclose(got, [0.0, 7.0, 4.0])


def _crps_by_quadrature(pmf: np.ndarray, mean: float, shape: float, y: float) -> float:
    def cdf(z: float) -> float:
        return float(compound_cdf(pmf[None, :], np.array([mean]), shape, np.array([z]))[0])

    upper = mean * (len(pmf) + 20) * 3
    below = integrate.quad(lambda z: cdf(z) ** 2, 0.0, max(y, 0.0), limit=400)[0] if y > 0 else 0
    above = integrate.quad(lambda z: (1 - cdf(z)) ** 2, max(y, 0.0), upper, limit=400)[0]
    return below + above + max(-y, 0.0)


@pytest.mark.parametrize("y", [-3.0, 0.0, 1.2, 9.0, 40.0])
def test_crps_compound_matches_numerical_integration_of_compound_cdf(y):
    pmf = np.array([0.45, 0.25, 0.12, 0.08, 0.06, 0.04])  # tail column taken as N = 5
    mean, shape = 3.0, 0.7
    got = crps_compound(pmf[None, :], [mean], shape, [y])[0]
    assert got == pytest.approx(_crps_by_quadrature(pmf, mean, shape, y), rel=1e-6)


def test_crps_compound_matches_monte_carlo_on_many_rows_across_chunks():
    rng = np.random.default_rng(2)
    n, k_max, shape = 7, 12, 1.8
    tables = rng.dirichlet(np.linspace(3, 0.2, k_max + 1), size=n)
    mean = rng.uniform(0.5, 40.0, n)
    y = rng.uniform(0, 80, n)
    got = crps_compound(tables, mean, shape, y, chunk=3)
    for i in range(n):
        counts = rng.choice(k_max + 1, size=(2, 300_000), p=tables[i])
        r1 = np.where(counts[0] > 0, rng.gamma(np.maximum(counts[0], 1) * shape), 0.0)
        r2 = np.where(counts[1] > 0, rng.gamma(np.maximum(counts[1], 1) * shape), 0.0)
        scale = mean[i] / shape
        mc = np.abs(r1 * scale - y[i]).mean() - 0.5 * np.abs(r1 - r2).mean() * scale
        assert got[i] == pytest.approx(mc, rel=0.02)  # Monte Carlo error ~0.5 %


def test_crps_compound_rewards_the_right_distribution():
    # strictly proper: on draws from the truth, the truth scores better than a wider model
    rng = np.random.default_rng(3)
    n, shape, mean = 4000, 2.0, 10.0
    truth = np.array([0.6, 0.3, 0.1])
    wrong = np.array([0.4, 0.2, 0.4])
    counts = rng.choice(3, size=n, p=truth)
    y = np.where(counts > 0, rng.gamma(np.maximum(counts, 1) * shape, mean / shape), 0.0)
    right = crps_compound(np.tile(truth, (n, 1)), np.full(n, mean), shape, y).mean()
    other = crps_compound(np.tile(wrong, (n, 1)), np.full(n, mean), shape, y).mean()
    assert right < other


# --- pit_coverage and interval_report ---------------------------------------------------------


def test_pit_coverage_is_the_band_width_for_a_calibrated_count_model():
    rng = np.random.default_rng(4)
    lam = rng.uniform(0.05, 3.0, 40_000)  # many zeros: raw intervals could not say this
    y = rng.poisson(lam)
    at = stats.poisson.cdf(y, lam)
    below = stats.poisson.cdf(y - 1, lam)
    assert pit_coverage(below, at, seed=0) == pytest.approx(0.8, abs=0.01)


def test_pit_coverage_falls_for_an_overconfident_model():
    rng = np.random.default_rng(5)
    y = rng.normal(0, 2.0, 20_000)
    cdf = stats.norm.cdf(y, 0, 1.0)  # the model claims sd 1
    assert pit_coverage(cdf, cdf, seed=0) < 0.6


def test_interval_report_separates_raw_implied_and_pit_coverage():
    # an atom at 0 of mass 0.7: [0, P90] covers it, so a calibrated model expects > 80 % raw
    rng = np.random.default_rng(6)
    n = 50_000
    bought = rng.random(n) < 0.3
    y = np.where(bought, rng.exponential(10.0, n), 0.0)
    p90 = stats.expon.ppf((0.9 - 0.7) / 0.3, scale=10.0)
    lo, hi = np.zeros(n), np.full(n, p90)
    implied = np.full(n, 0.9)  # F(P90) - F(0-) = 0.9
    at = np.where(bought, 0.7 + 0.3 * stats.expon.cdf(y, scale=10.0), 0.7)
    below = np.where(bought, at, 0.0)
    pit = below + rng.random(n) * (at - below)
    report = interval_report(y, lo, hi, implied, pit, rng.random(n))
    overall = report["overall"]
    assert overall["raw"] == pytest.approx(0.9, abs=0.01)
    assert overall["implied"] == pytest.approx(0.9)
    assert overall["pit"] == pytest.approx(0.8, abs=0.01)
    assert overall["min_lower"] == 0.0
    assert report["target"] == pytest.approx(0.8)
    assert len(report["by_decile"]) == 10
    assert sum(d["n"] for d in report["by_decile"]) == n


def test_interval_report_orders_deciles_by_descending_prediction():
    y = np.arange(20, dtype=float)
    report = interval_report(y, y - 1, y + 1, np.ones(20), np.full(20, 0.5), y, n_groups=2)
    means = [d["predicted_mean"] for d in report["by_decile"]]
    assert means == [14.5, 4.5]
