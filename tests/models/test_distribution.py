"""The CLV distribution's building blocks against direct computation and Monte Carlo."""

from __future__ import annotations

import numpy as np
from scipy import stats

from lifecycle.models.distribution import (
    compound_cdf,
    compound_quantile,
    count_quantile,
    randomized_pit,
    tilt,
)


def _table(rows: list[list[float]]) -> np.ndarray:
    table = np.array(rows, dtype=float)
    return table / table.sum(axis=1, keepdims=True)


def test_tilt_keeps_the_shape_family_and_reaches_the_mean() -> None:
    base = _table([[0.6, 0.2, 0.1, 0.05, 0.03, 0.02], [0.9, 0.05, 0.03, 0.01, 0.005, 0.005]])
    wanted = np.array([1.5, 3.2])
    out = tilt(base, wanted)
    k = np.arange(base.shape[1])
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(out @ k, wanted, rtol=1e-8)
    assert (out[:, 0] == 0).all()
    # an exponential tilt: the log ratio to the base's positive part is linear in k
    ratio = np.log(out[:, 1:] / base[:, 1:])
    np.testing.assert_allclose(np.diff(ratio, n=2, axis=1), 0.0, atol=1e-8)


def test_tilt_of_a_row_without_positive_mass_still_reaches_the_mean() -> None:
    out = tilt(np.array([[1.0, 0.0, 0.0, 0.0, 0.0]]), np.array([2.0]))
    np.testing.assert_allclose(out @ np.arange(5), [2.0], rtol=1e-8)


def test_compound_cdf_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    pmf = _table([[0.5, 0.3, 0.15, 0.05]])
    mean_day, shape = np.array([40.0]), 0.7
    n = rng.choice(4, size=200_000, p=pmf[0])
    draws = np.where(n > 0, rng.gamma(np.maximum(n, 1) * shape, 40.0 / shape), 0.0)
    for z in (0.0, 10.0, 40.0, 120.0):
        got = compound_cdf(pmf, mean_day, shape, np.array([z]))[0]
        assert abs(got - np.mean(draws <= z)) < 0.005, z


def test_compound_quantile_inverts_the_cdf_and_respects_the_atom() -> None:
    pmf = _table([[0.3, 0.4, 0.2, 0.1], [0.05, 0.5, 0.3, 0.15]])
    mean_day, shape = np.array([20.0, 100.0]), 1.3
    levels = np.array([0.2, 0.6])
    q = compound_quantile(pmf, mean_day, shape, levels)
    assert q[0] == 0.0  # level 0.2 lies in the 30 % atom at zero
    np.testing.assert_allclose(compound_cdf(pmf[1:], mean_day[1:], shape, q[1:]), [0.6], atol=1e-6)
    assert (compound_quantile(pmf, mean_day, shape, np.array([0.01, 0.01])) >= 0).all()


def test_count_quantile_is_the_smallest_count_reaching_the_level() -> None:
    pmf = _table([[0.5, 0.3, 0.15, 0.05]])
    assert count_quantile(pmf, np.array([0.5]))[0] == 0
    assert count_quantile(pmf, np.array([0.51]))[0] == 1
    assert count_quantile(pmf, np.array([0.9]))[0] == 2


def test_randomized_pit_is_uniform_for_a_calibrated_count_forecast() -> None:
    rng = np.random.default_rng(1)
    mean = rng.gamma(2.0, 1.0, size=50_000)
    y = rng.poisson(mean)
    pit = randomized_pit(stats.poisson.cdf(y - 1, mean), stats.poisson.cdf(y, mean), seed=2)
    inside = np.mean((pit >= 0.1) & (pit <= 0.9))
    assert abs(inside - 0.8) < 0.01
