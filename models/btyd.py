"""Buy-till-you-die models as numpy closed forms: BG/NBD, Pareto/NBD and Gamma-Gamma spend.

The models are fitted at every training cut-off and evaluated in the serving hot path, so this
module needs numpy and scipy only (no pymc, pytensor or lifetimes): maximum likelihood by
L-BFGS-B with analytic gradients, and the predictions of Fader, Hardie & Lee as vectorised
closed forms or fixed Gauss-Legendre quadratures. ``pymc-marketing`` and ``lifetimes`` fit the
same models and serve as references in the tests (``tests/models/test_btyd.py``).

Inputs are per-customer arrays in **days**: ``x`` repeat purchase days (distinct purchase days
minus one), ``t_x`` days from the first to the last purchase, ``T`` days from the first purchase
to the cut-off (``T >= t_x >= 0``, and ``t_x = 0`` where ``x = 0``). Internally times are divided
by ``BtydParams.time_unit_days`` (weeks by default) for numerical conditioning; the parameters
``alpha`` and ``beta`` are in that unit.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting your customers" the easy
   way: an alternative to the Pareto/NBD model. Marketing Science 24(2), 275-284.
.. [2] Schmittlein, D. C., Morrison, D. G. & Colombo, R. (1987). Counting your customers: who
   are they and what will they do next? Management Science 33(1), 1-24.
.. [3] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: using iso-value curves
   for customer base analysis. Journal of Marketing Research 42(4), 415-430.
.. [4] Fader, P. S. & Hardie, B. G. S. (2005, 2013, 2019). Notes at brucehardie.com: "A note on
   deriving the Pareto/NBD model and related expressions" (notes/008), "The Gamma-Gamma model
   of monetary value" (notes/025), "A step-by-step derivation of the BG/NBD model" (notes/039).

Examples
--------
>>> params = BtydParams(model="bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426)
>>> x, t_x, T = np.array([0.0, 2.0]), np.array([0.0, 213.0]), np.array([272.0, 272.0])
>>> p_alive(params, x, t_x, T).round(3)
array([1.   , 0.727])
>>> expected_purchases(params, x, t_x, T, horizon_days=273.0).round(3)
array([0.195, 1.226])
>>> count_pmf_table(params, x, t_x, T, horizon_days=273.0, kmax=3).round(3)
array([[0.855, 0.11 , 0.024, 0.01 ],
       [0.445, 0.239, 0.144, 0.171]])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, special
from threadpoolctl import threadpool_limits

FloatArray = npt.NDArray[np.float64]
Model = Literal["bgnbd", "pareto_nbd"]

MODELS: tuple[Model, ...] = ("bgnbd", "pareto_nbd")
MIN_CUSTOMERS = 20
"""Fewest customers :func:`fit_btyd` fits on (and fewest with spend for Gamma-Gamma)."""
COUNT_CAP = 1000
"""Largest ``kmax`` :func:`count_upper` returns."""

_DEATH_NODES = 24  # Gauss-Legendre nodes of the Pareto/NBD likelihood's death-time integral
_LIFETIME_NODES = 32  # nodes of the Pareto/NBD count distribution's remaining-lifetime integral
_MEAN_NODES = 64  # tanh-sinh nodes per side of the BG/NBD conditional mean's Beta integral
_LOG_BOUNDS = (-12.0, 16.0)  # bounds of the log-parameters in the fits
_SUBSAMPLE = 2000  # customers the starting points are compared on before the full fit
_PARAMS: dict[str, tuple[str, ...]] = {
    "bgnbd": ("r", "alpha", "a", "b"),
    "pareto_nbd": ("r", "alpha", "s", "beta"),
}


@dataclass(frozen=True)
class BtydParams:
    """Fitted BTYD parameters: a purchase model (BG/NBD or Pareto/NBD) and Gamma-Gamma spend.

    Parameters
    ----------
    model
        ``"bgnbd"`` or ``"pareto_nbd"``.
    r, alpha
        Purchase rates (per time unit) across customers are Gamma(``r``, ``alpha``): shape
        ``r`` and rate ``alpha``, in time units.
    a, b
        BG/NBD: the drop-out probability after each repeat purchase is Beta(``a``, ``b``);
        None for Pareto/NBD.
    s, beta
        Pareto/NBD: drop-out rates are Gamma(``s``, ``beta``), ``beta`` in time units; None for
        BG/NBD.
    p, q, v
        Gamma-Gamma spend: each transaction's value is Gamma(``p``, ``nu``) and the customer's
        ``nu`` is Gamma(``q``, ``v``); None when too few customers had positive spend.
    time_unit_days
        Days in one time unit of ``alpha`` and ``beta`` (7: weeks).
    log_likelihood
        Total log-likelihood of each candidate model fitted (in the time unit), for the record.
    customers
        Customers the purchase model was fitted on.

    Examples
    --------
    >>> params = BtydParams(model="pareto_nbd", r=0.55, alpha=10.58, s=0.61, beta=11.67)
    >>> BtydParams.from_dict(params.to_dict()) == params
    True
    """

    model: Model
    r: float
    alpha: float
    a: float | None = None
    b: float | None = None
    s: float | None = None
    beta: float | None = None
    p: float | None = None
    q: float | None = None
    v: float | None = None
    time_unit_days: float = 7.0
    log_likelihood: dict[str, float] = field(default_factory=dict, hash=False)
    customers: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        for name in _PARAMS[self.model]:
            value = getattr(self, name)
            if value is None or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{self.model} needs a positive finite {name}, got {value}")
        spend = (self.p, self.q, self.v)
        if any(value is not None for value in spend) and not (
            all(value is not None and math.isfinite(value) and value > 0 for value in spend)
            and self.q is not None
            and self.q > 1
        ):
            raise ValueError(f"Gamma-Gamma needs p, v > 0 and q > 1 (or all None), got {spend}")
        if not self.time_unit_days > 0:
            raise ValueError(f"time_unit_days must be positive, got {self.time_unit_days}")

    @property
    def has_spend(self) -> bool:
        """Whether the Gamma-Gamma spend parameters are set."""
        return self.p is not None

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-able dict (:meth:`from_dict` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BtydParams:
        """Build parameters from :meth:`to_dict`'s output.

        Raises
        ------
        ValueError
            On unknown keys, or parameters that do not make a valid model.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown BtydParams fields {unknown}")
        values = dict(data)

        def number(value: Any) -> float | None:
            return None if value is None else float(value)

        for name in ("r", "alpha", "a", "b", "s", "beta", "p", "q", "v", "time_unit_days"):
            if name in values:
                values[name] = number(values[name])
        values["log_likelihood"] = {
            str(k): float(v) for k, v in dict(values.get("log_likelihood", {})).items()
        }
        values["customers"] = int(values.get("customers", 0))
        return cls(**values)


# ---------------------------------------------------------------------------------------------
# inputs


def _as_float(name: str, values: npt.ArrayLike) -> FloatArray:
    """Return ``values`` as a float64 array, raising on NaN or infinity."""
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def _history(
    x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike, unit: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check a purchase history in days and return it broadcast, in time units."""
    x_, t_x_, T_ = (_as_float(n, v) for n, v in (("x", x), ("t_x", t_x), ("T", T)))
    x_, t_x_, T_ = np.broadcast_arrays(x_, t_x_, T_)
    if np.any(x_ < 0) or np.any(x_ != np.round(x_)):
        raise ValueError("x (repeat purchase days) must be whole numbers >= 0")
    if np.any(t_x_ < 0) or np.any(t_x_ > T_):
        raise ValueError("the history needs 0 <= t_x <= T")
    if np.any((x_ == 0) & (t_x_ != 0)):
        raise ValueError("t_x must be 0 where x == 0 (no repeat purchase)")
    return x_, t_x_ / unit, T_ / unit


def _horizon(horizon_days: float, unit: float) -> float:
    """Check a horizon in days and return it in time units."""
    if not (math.isfinite(horizon_days) and horizon_days >= 0):
        raise ValueError(f"horizon_days must be finite and >= 0, got {horizon_days}")
    return float(horizon_days) / unit


def _counts(k: npt.ArrayLike) -> FloatArray:
    """Check purchase counts ``k`` (whole numbers >= 0) and return them as floats."""
    k_ = np.asarray(k, dtype=np.float64)
    if np.any(~np.isfinite(k_)) or np.any(k_ < 0) or np.any(k_ != np.round(k_)):
        raise ValueError("k must be whole numbers >= 0")
    return k_


@cache
def _gauss_legendre(nodes: int) -> tuple[FloatArray, FloatArray]:
    """Return Gauss-Legendre nodes on [0, 1] and weights summing to 1."""
    xi, w = np.polynomial.legendre.leggauss(nodes)
    return (xi + 1.0) / 2.0, w / 2.0


@cache
def _clustered_nodes(nodes: int) -> tuple[FloatArray, FloatArray]:
    """Return Gauss-Legendre nodes and weights on [0, 1] mapped by ``u = g(xi)``.

    ``g' = 12 xi (1 - xi)^2`` gathers the nodes at both ends, most at ``u = 1``, where the
    flattened death-time integrand of the Pareto/NBD likelihood can still bend.
    """
    xi, w = _gauss_legendre(nodes)
    u = xi**2 * (6.0 - 8.0 * xi + 3.0 * xi**2)
    return u, w * 12.0 * xi * (1.0 - xi) ** 2


# ---------------------------------------------------------------------------------------------
# log-likelihoods


def _bgnbd_terms(
    x: FloatArray, t_x: FloatArray, T: FloatArray, r: float, alpha: float, a: float, b: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return the BG/NBD log-likelihood's constant, alive term and dropped-out term."""
    const = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) - special.betaln(a, b)
    alive = special.betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    xb = np.where(repeat, x, 1.0)  # keeps b + x - 1 > 0 where the term is unused
    dropped = special.betaln(a + 1.0, b + xb - 1.0) - (r + x) * np.log(alpha + t_x)
    return const, alive, np.where(repeat, dropped, -np.inf)


def bgnbd_log_likelihood(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
) -> FloatArray:
    """Return the BG/NBD log-likelihood of each customer, constants included.

    ``L = Gamma(r + x) alpha^r / (Gamma(r) B(a, b)) * [B(a, b + x) / (alpha + T)^(r + x)
    + 1{x > 0} B(a + 1, b + x - 1) / (alpha + t_x)^(r + x)]``, equation (6) of Fader, Hardie &
    Lee (2005), "Counting your customers the easy way". It is the density of the repeat purchase
    times, so it is comparable with :func:`pareto_nbd_log_likelihood` on the same data.

    Parameters
    ----------
    x, t_x, T
        Repeat purchases, time of the last purchase and length of the observation period, all
        in the time unit of ``alpha`` (not days).
    r, alpha, a, b
        BG/NBD parameters.

    Returns
    -------
    numpy.ndarray
        One log-likelihood per customer.

    Examples
    --------
    >>> bgnbd_log_likelihood([2.0], [30.43], [38.86], r=0.243, alpha=4.414, a=0.793, b=2.426)
    array([-9.4586...])
    """
    x_, t_x_, T_ = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, T)))
    const, alive, dropped = _bgnbd_terms(x_, t_x_, T_, r, alpha, a, b)
    return const + np.logaddexp(alive, dropped)


def _bgnbd_loglik_grad(
    x: FloatArray, t_x: FloatArray, T: FloatArray, params: Sequence[float]
) -> tuple[FloatArray, FloatArray]:
    """Return per-customer BG/NBD log-likelihoods and their gradient in (r, alpha, a, b)."""
    r, alpha, a, b = params
    const, alive, dropped = _bgnbd_terms(x, t_x, T, r, alpha, a, b)
    total = np.logaddexp(alive, dropped)
    w_alive = np.exp(alive - total)
    w_dropped = 1.0 - w_alive
    repeat = x > 0
    psi = special.digamma
    psi_abx = psi(a + b + x)
    psi_bx1 = np.where(repeat, psi(b + np.where(repeat, x, 1.0) - 1.0), 0.0)
    grad = np.empty((4, x.size))
    grad[0] = (
        psi(r + x)
        - psi(r)
        + math.log(alpha)
        - w_alive * np.log(alpha + T)
        - w_dropped * np.log(alpha + t_x)
    )
    grad[1] = r / alpha - (r + x) * (w_alive / (alpha + T) + w_dropped / (alpha + t_x))
    grad[2] = (
        -(psi(a) - psi(a + b)) + w_alive * (psi(a) - psi_abx) + w_dropped * (psi(a + 1.0) - psi_abx)
    )
    grad[3] = (
        -(psi(b) - psi(a + b)) + w_alive * (psi(b + x) - psi_abx) + w_dropped * (psi_bx1 - psi_abx)
    )
    return const + total, grad


def _death_integral(
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    *,
    nodes: int = _DEATH_NODES,
    moments: bool = False,
) -> tuple[FloatArray, FloatArray | None]:
    """Return log of the integral over [t_x, T] of (alpha + tau)^-(r+x) (beta + tau)^-(s+1).

    The substitution ``u = G(tau) / G(T)``, with ``G`` the integral of ``(kappa + tau)^-(m+1)``
    whose ``kappa`` and ``m`` match the log-integrand's first two derivatives at ``t_x``, leaves a
    nearly flat integrand in ``u`` (flat exactly when alpha == beta), integrated by
    Gauss-Legendre with nodes gathered at the ends (:func:`_clustered_nodes`). With
    ``moments``, also return the integrand-weighted means of log(alpha + tau),
    1 / (alpha + tau), log(beta + tau) and 1 / (beta + tau) (shape (4, n)), from which the
    gradient of the exact integral follows.
    """
    shape = np.shape(x)
    x, t_x, T = x.ravel(), t_x.ravel(), T.ravel()
    A = r + x
    B = s + 1.0
    d1 = A / (alpha + t_x) + B / (beta + t_x)
    d2 = A / (alpha + t_x) ** 2 + B / (beta + t_x) ** 2
    kappa_tx = d1 / d2  # kappa + t_x
    # any m gives an exact change of variables; keeping it off 0 avoids 0/0 below
    m = d1 * kappa_tx - 1.0
    m = np.where(np.abs(m) < 1e-6, np.where(m < 0, -1e-6, 1e-6), m)
    delta = np.log1p((T - t_x) / kappa_tx)
    # with d = log(kappa + tau) - log(kappa + t_x): G(d) = (1 - e^(-m d)) / m, phi = G(delta)
    phi = -np.expm1(-m * delta) / m
    u, weight = _clustered_nodes(nodes)
    # (n, nodes) arrays, updated in place: this is the inner loop of the Pareto/NBD fit
    d = np.multiply.outer(-m * phi, u)
    np.log1p(d, out=d)
    d /= -m[:, None]
    tau = np.expm1(d)
    tau *= kappa_tx[:, None]
    tau += t_x[:, None]
    alpha_tau = tau + alpha
    beta_tau = np.add(tau, beta, out=tau)
    log_alpha_tau = np.log(alpha_tau)
    log_beta_tau = np.log(beta_tau)
    log_f = np.multiply(d, (m + 1.0)[:, None], out=d)
    log_f -= A[:, None] * log_alpha_tau
    log_f -= B * log_beta_tau
    top = log_f.max(axis=1)
    log_f -= top[:, None]
    omega = np.exp(log_f, out=log_f)
    omega *= weight
    total = omega.sum(axis=1)
    with np.errstate(divide="ignore"):  # phi = 0 where t_x == T: log(0) = -inf
        log_integral = (top + np.log(total) + np.log(kappa_tx) + np.log(phi)).reshape(shape)
    if not moments:
        return log_integral, None
    np.reciprocal(alpha_tau, out=alpha_tau)
    np.reciprocal(beta_tau, out=beta_tau)
    means = np.stack(
        [
            np.einsum("ij,ij->i", omega, log_alpha_tau),
            np.einsum("ij,ij->i", omega, alpha_tau),
            np.einsum("ij,ij->i", omega, log_beta_tau),
            np.einsum("ij,ij->i", omega, beta_tau),
        ]
    )
    means /= total
    return log_integral, means.reshape((4, *shape))


def _pareto_terms(
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    params: Sequence[float],
    *,
    moments: bool = False,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None]:
    """Return the Pareto/NBD log-likelihood's constant, alive term and died-by-T term."""
    r, alpha, s, beta = params
    const = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha)
    alive = -(r + x) * np.log(alpha + T) + s * (math.log(beta) - np.log(beta + T))
    log_integral, means = _death_integral(x, t_x, T, r, alpha, s, beta, moments=moments)
    died = math.log(s) + s * math.log(beta) + log_integral
    return const, alive, died, means


def pareto_nbd_log_likelihood(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    r: float,
    alpha: float,
    s: float,
    beta: float,
) -> FloatArray:
    """Return the Pareto/NBD log-likelihood of each customer, constants included.

    Given purchase rate ``lambda ~ Gamma(r, alpha)`` and drop-out rate ``mu ~ Gamma(s, beta)``
    (Schmittlein, Morrison & Colombo 1987), the likelihood is the "still alive at T" term
    ``Gamma(r+x)/Gamma(r) alpha^r/(alpha+T)^(r+x) (beta/(beta+T))^s`` plus the "died at tau in
    (t_x, T]" term, the integral over tau of ``E[lambda^x e^(-lambda tau)] E[mu e^(-mu tau)]
    = Gamma(r+x)/Gamma(r) alpha^r/(alpha+tau)^(r+x) * s beta^s/(beta+tau)^(s+1)``. The integral
    is computed by Gauss-Legendre quadrature after a change of variables that flattens the
    integrand, in logs, instead of the Gauss hypergeometric form, which loses precision when
    alpha and beta are far apart.

    Parameters
    ----------
    x, t_x, T
        Repeat purchases, time of the last purchase and length of the observation period, all
        in the time unit of ``alpha`` and ``beta`` (not days).
    r, alpha, s, beta
        Pareto/NBD parameters.

    Returns
    -------
    numpy.ndarray
        One log-likelihood per customer, comparable with :func:`bgnbd_log_likelihood`.

    Examples
    --------
    >>> pareto_nbd_log_likelihood([2.0], [30.43], [38.86], r=0.55, alpha=10.58, s=0.61,
    ...                           beta=11.67)
    array([-9.5619...])
    """
    x_, t_x_, T_ = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, T)))
    const, alive, died, _ = _pareto_terms(x_, t_x_, T_, (r, alpha, s, beta))
    return const + np.logaddexp(alive, died)


def _pareto_loglik_grad(
    x: FloatArray, t_x: FloatArray, T: FloatArray, params: Sequence[float]
) -> tuple[FloatArray, FloatArray]:
    """Return per-customer Pareto/NBD log-likelihoods and their gradient in (r, alpha, s, beta)."""
    r, alpha, s, beta = params
    const, alive, died, means = _pareto_terms(x, t_x, T, params, moments=True)
    assert means is not None  # noqa: S101 (moments=True)
    total = np.logaddexp(alive, died)
    w_alive = np.exp(alive - total)
    w_died = 1.0 - w_alive
    mean_log_at, mean_inv_at, mean_log_bt, mean_inv_bt = means
    grad = np.empty((4, x.size))
    grad[0] = (
        special.digamma(r + x)
        - special.digamma(r)
        + math.log(alpha)
        - w_alive * np.log(alpha + T)
        - w_died * mean_log_at
    )
    grad[1] = r / alpha - (r + x) * (w_alive / (alpha + T) + w_died * mean_inv_at)
    grad[2] = w_alive * (math.log(beta) - np.log(beta + T)) + w_died * (
        1.0 / s + math.log(beta) - mean_log_bt
    )
    grad[3] = w_alive * (s / beta - s / (beta + T)) + w_died * (s / beta - (s + 1.0) * mean_inv_bt)
    return const + total, grad


def gamma_gamma_log_likelihood(
    n: npt.ArrayLike, monetary: npt.ArrayLike, *, p: float, q: float, v: float
) -> FloatArray:
    """Return the Gamma-Gamma log-likelihood of each customer's mean spend per transaction.

    Spend per transaction ``~ Gamma(p, nu)`` and ``nu ~ Gamma(q, v)`` (Fader, Hardie & Lee 2005,
    "RFM and CLV"; Fader & Hardie, note 025), so the mean ``z`` of ``n`` transactions has density
    ``Gamma(p n + q) / (Gamma(p n) Gamma(q)) v^q n^(p n) z^(p n - 1) / (v + n z)^(p n + q)``.

    Parameters
    ----------
    n
        Transactions per customer (> 0).
    monetary
        Mean value per transaction (> 0).
    p, q, v
        Gamma-Gamma parameters.

    Returns
    -------
    numpy.ndarray
        One log-density per customer.

    Examples
    --------
    >>> gamma_gamma_log_likelihood([1.0, 3.0], [20.0, 35.0], p=6.25, q=3.74, v=15.44).round(3)
    array([-3.594, -4.064])
    """
    n_, z = np.broadcast_arrays(*(np.asarray(v_, dtype=np.float64) for v_ in (n, monetary)))
    pn = p * n_
    return (
        special.gammaln(pn + q)
        - special.gammaln(pn)
        - special.gammaln(q)
        + q * math.log(v)
        + pn * np.log(n_)
        + (pn - 1.0) * np.log(z)
        - (pn + q) * np.log(v + n_ * z)
    )


def _gamma_gamma_loglik_grad(
    n: FloatArray, z: FloatArray, params: Sequence[float]
) -> tuple[FloatArray, FloatArray]:
    """Return per-customer Gamma-Gamma log-likelihoods and their gradient in (p, q, v)."""
    p, q, v = params
    ll = gamma_gamma_log_likelihood(n, z, p=p, q=q, v=v)
    pn = p * n
    psi_pnq = special.digamma(pn + q)
    log_vnz = np.log(v + n * z)
    grad = np.empty((3, n.size))
    grad[0] = n * (psi_pnq - special.digamma(pn) + np.log(n) + np.log(z) - log_vnz)
    grad[1] = psi_pnq - special.digamma(q) + math.log(v) - log_vnz
    grad[2] = q / v - (pn + q) / (v + n * z)
    return ll, grad


def log_likelihood(
    params: BtydParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> FloatArray:
    """Return the purchase model's log-likelihood of each customer's history given in days.

    Parameters
    ----------
    params
        Fitted parameters (their ``model`` and ``time_unit_days`` are used).
    x, t_x, T
        Repeat purchase days, days from the first to the last purchase and from the first
        purchase to the cut-off.

    Returns
    -------
    numpy.ndarray
        One log-likelihood per customer, in the time unit (as ``params.log_likelihood``).
    """
    x_, t_x_, T_ = _history(x, t_x, T, params.time_unit_days)
    if params.model == "bgnbd":
        return bgnbd_log_likelihood(
            x_, t_x_, T_, r=params.r, alpha=params.alpha, a=_get(params.a), b=_get(params.b)
        )
    return pareto_nbd_log_likelihood(
        x_, t_x_, T_, r=params.r, alpha=params.alpha, s=_get(params.s), beta=_get(params.beta)
    )


def _get(value: float | None) -> float:
    """Return a parameter that ``BtydParams`` guarantees is set for its model."""
    if value is None:
        raise ValueError("parameter missing for this model")
    return value


# ---------------------------------------------------------------------------------------------
# fitting


def _maximise(
    loglik_grad: Callable[..., tuple[FloatArray, FloatArray]],
    data: tuple[FloatArray, ...],
    weights: FloatArray,
    theta0: FloatArray,
    to_params: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
) -> tuple[FloatArray, float]:
    """Maximise a weighted log-likelihood over log-parameters; return (theta, total LL)."""
    total_weight = float(weights.sum())

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        params, dparams = to_params(theta)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ll, grad = loglik_grad(*data, params)
        value = -float(weights @ ll) / total_weight
        gradient = -(grad @ weights) * dparams / total_weight
        if not (math.isfinite(value) and np.all(np.isfinite(gradient))):
            return 1e10, np.zeros_like(theta)  # sends the line search back
        return value, gradient

    result = optimize.minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=[_LOG_BOUNDS] * theta0.size,
        options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-8},
    )
    return result.x, -float(result.fun) * total_weight


def _exp_params(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Map log-parameters to parameters, with the derivative."""
    params = np.exp(theta)
    return params, params


def _gamma_gamma_params(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Map (log p, log(q - 1), log v) to (p, q, v), with the derivative; keeps the mean finite."""
    e = np.exp(theta)
    return np.array([e[0], 1.0 + e[1], e[2]]), e


def _fit_from_starts(
    loglik_grad: Callable[..., tuple[FloatArray, FloatArray]],
    columns: tuple[FloatArray, ...],
    starts: Sequence[FloatArray],
    to_params: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
) -> tuple[FloatArray, float]:
    """Fit from each start on a fixed subsample, then from the best on all rows.

    Rows with the same values are fitted once, with their count as weight.
    """
    rows = np.stack(columns, axis=1)

    def distinct(chosen: FloatArray) -> tuple[tuple[FloatArray, ...], FloatArray]:
        unique, counts = np.unique(chosen, axis=0, return_counts=True)
        return tuple(np.ascontiguousarray(c) for c in unique.T), counts.astype(np.float64)

    full, weights = distinct(rows)
    if len(rows) > 2 * _SUBSAMPLE:
        sub, sub_weights = distinct(
            rows[np.random.default_rng(0).choice(len(rows), _SUBSAMPLE, replace=False)]
        )
    else:
        sub, sub_weights = full, weights
    fits = [_maximise(loglik_grad, sub, sub_weights, start, to_params) for start in starts]
    best = max(fits, key=lambda fit: fit[1])[0]
    return _maximise(loglik_grad, full, weights, best, to_params)


def _fit_purchases(
    model: Model, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[tuple[float, ...], float]:
    """Fit one purchase model by maximum likelihood; return its parameters and total LL."""
    rate = max(float(x.sum()) / max(float(T.sum()), 1e-12), 1e-6)  # purchases per time unit
    horizon = max(float(T.mean()), 1e-6)
    if model == "bgnbd":
        loglik_grad = _bgnbd_loglik_grad
        starts = [(r, r / rate, a, b) for r in (0.3, 1.5) for a, b in ((0.8, 2.5), (2.0, 8.0))]
    else:
        loglik_grad = _pareto_loglik_grad
        starts = [
            (r, r / rate, s, s * horizon * k)
            for r in (0.3, 1.5)
            for s, k in ((0.6, 1.0), (2.0, 4.0))
        ]
    theta, ll = _fit_from_starts(
        loglik_grad, (x, t_x, T), [np.log(start) for start in starts], _exp_params
    )
    return tuple(float(value) for value in np.exp(theta)), ll


def _fit_gamma_gamma(n: FloatArray, z: FloatArray) -> tuple[float, float, float]:
    """Fit Gamma-Gamma by maximum likelihood (``q > 1``); return (p, q, v)."""
    mean = float(z.mean())
    starts = [np.log([p, q - 1.0, mean * (q - 1.0) / p]) for p in (1.0, 5.0) for q in (2.0, 5.0)]
    theta, _ = _fit_from_starts(_gamma_gamma_loglik_grad, (n, z), starts, _gamma_gamma_params)
    p, q, v = _gamma_gamma_params(theta)[0]
    return float(p), float(q), float(v)


def fit_btyd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    monetary: npt.ArrayLike | None,
    *,
    time_unit_days: float = 7.0,
    candidates: Sequence[Model] = MODELS,
) -> BtydParams:
    """Fit each candidate purchase model and Gamma-Gamma spend by maximum likelihood.

    Each candidate (BG/NBD, Fader, Hardie & Lee 2005; Pareto/NBD, Schmittlein, Morrison &
    Colombo 1987) is fitted by L-BFGS-B on log-parameters with analytic gradients: from a few
    fixed starting points on a fixed subsample of 2,000 customers, then from the best of them on
    all customers (customers with the same history are counted once, with a weight). The
    candidate with the higher log-likelihood is kept; both likelihoods include all constants, so
    they compare. Deterministic.

    Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV") is fitted on the customers with
    ``monetary > 0``, each with ``n_days = x + 1`` transactions: ``monetary`` is the mean over
    *all* purchase days, the first included, so the first purchase counts as a transaction too
    (the textbook model uses repeat transactions only, which leaves out one-time buyers).
    ``q`` is kept above 1 so that the population mean spend ``v p / (q - 1)`` is finite. It
    is fitted the same way (subsample, then all customers).

    Both purchase models and the spend model take ~0.5-0.8 s for 20,000 customers on two
    cores; most of it is the Pareto/NBD likelihood's quadrature.

    Parameters
    ----------
    x
        Repeat purchase days per customer (distinct purchase days minus one).
    t_x
        Days from the first to the last purchase (0 where ``x == 0``).
    T
        Days from the first purchase to the cut-off (``T >= t_x``).
    monetary
        Mean value per purchase day; 0, NaN or None where unknown.
    time_unit_days
        Days in the internal time unit (7: weeks), for numerical conditioning.
    candidates
        Purchase models to fit, among ``"bgnbd"`` and ``"pareto_nbd"``.

    Returns
    -------
    BtydParams
        The chosen model's parameters, Gamma-Gamma's (None when fewer than 20 customers have
        positive spend) and the log-likelihood of every candidate.

    Raises
    ------
    ValueError
        With fewer than 20 customers, no repeat purchase at all, an unknown candidate, or an
        inconsistent history.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> n = 500
    >>> T = rng.integers(30, 365, n).astype(float)
    >>> lam = rng.gamma(0.8, 1 / 20, n)  # purchases per day
    >>> x = rng.poisson(lam * T * 0.7).astype(float)
    >>> t_x = np.where(x > 0, np.minimum(T, np.round(T * rng.uniform(0.5, 1.0, n))), 0.0)
    >>> params = fit_btyd(x, t_x, T, np.where(x > 0, rng.gamma(5.0, 10.0, n), 0.0))
    >>> params.model in ("bgnbd", "pareto_nbd"), params.customers, params.has_spend
    (True, 500, True)
    >>> sorted(params.log_likelihood)
    ['bgnbd', 'pareto_nbd']
    """
    if not (math.isfinite(time_unit_days) and time_unit_days > 0):
        raise ValueError(f"time_unit_days must be positive, got {time_unit_days}")
    unknown = [c for c in candidates if c not in MODELS]
    if not candidates or unknown:
        raise ValueError(f"candidates must be a non-empty subset of {MODELS}, got {candidates}")
    x_, t_x_, T_ = _history(x, t_x, T, time_unit_days)
    x_, t_x_, T_ = x_.ravel(), t_x_.ravel(), T_.ravel()
    if x_.size < MIN_CUSTOMERS:
        raise ValueError(f"BTYD needs at least {MIN_CUSTOMERS} customers, got {x_.size}")
    if not np.any(x_ > 0):
        raise ValueError("BTYD needs some repeat purchases; no customer has x > 0")

    # L-BFGS-B's tiny BLAS calls wake OpenBLAS threads that then spin against the numpy work
    # between iterations: one BLAS thread makes the fits several times faster on few cores.
    with threadpool_limits(limits=1, user_api="blas"):
        fitted = {m: _fit_purchases(m, x_, t_x_, T_) for m in dict.fromkeys(candidates)}
        spend: dict[str, float] = {}
        if monetary is not None:
            money = np.broadcast_to(np.asarray(monetary, dtype=np.float64), x_.shape)
            positive = np.isfinite(money) & (money > 0)
            if positive.sum() >= MIN_CUSTOMERS:
                p, q, v = _fit_gamma_gamma(x_[positive] + 1.0, money[positive])
                spend = {"p": p, "q": q, "v": v}
    model = max(fitted, key=lambda m: fitted[m][1])
    values = dict(zip(_PARAMS[model], fitted[model][0], strict=True))
    return BtydParams(
        model=model,
        **values,
        **spend,
        time_unit_days=float(time_unit_days),
        log_likelihood={m: float(fitted[m][1]) for m in fitted},
        customers=int(x_.size),
    )


# ---------------------------------------------------------------------------------------------
# predictions


def _log_p_alive(params: BtydParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """Return log P(alive at T | history), history in time units."""
    r, alpha = params.r, params.alpha
    if params.model == "bgnbd":
        a, b = _get(params.a), _get(params.b)
        repeat = x > 0
        xb = np.where(repeat, x, 1.0)
        log_odds_dead = (
            math.log(a) - np.log(b + xb - 1.0) + (r + x) * np.log((alpha + T) / (alpha + t_x))
        )
        return np.where(repeat, -np.logaddexp(0.0, log_odds_dead), 0.0)
    _, alive, died, _ = _pareto_terms(x, t_x, T, (r, alpha, _get(params.s), _get(params.beta)))
    return alive - np.logaddexp(alive, died)


def p_alive(
    params: BtydParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> FloatArray:
    """Return each customer's probability of being alive at the cut-off.

    BG/NBD: ``1 / (1 + 1{x > 0} a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))``
    (Fader, Hardie & Lee 2005, eq. 13). Pareto/NBD: the alive term of the likelihood over the
    likelihood (see :func:`pareto_nbd_log_likelihood`).

    Parameters
    ----------
    params
        Fitted parameters.
    x, t_x, T
        Histories in days (see the module docstring).

    Returns
    -------
    numpy.ndarray
        P(alive at T), broadcast shape of the inputs.

    Examples
    --------
    >>> params = BtydParams(model="pareto_nbd", r=0.55, alpha=10.58, s=0.61, beta=11.67)
    >>> p_alive(params, [0.0, 3.0, 3.0], [0.0, 100.0, 250.0], [272.0, 272.0, 272.0]).round(3)
    array([0.294, 0.302, 0.957])
    """
    x_, t_x_, T_ = _history(x, t_x, T, params.time_unit_days)
    return np.exp(_log_p_alive(params, x_, t_x_, T_))


@cache
def _tanh_sinh(nodes_per_side: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return tanh-sinh nodes ``u`` on (0, 1), ``1 - u`` (accurate near 1) and weights."""
    s = np.linspace(-3.5, 3.5, 2 * nodes_per_side + 1)  # u from ~1e-23 to 1 - 1e-23
    y = np.pi * np.sinh(s)
    u = special.expit(y)
    # du/ds = u (1 - u) pi cosh(s), trapezoid rule in s
    weight = (s[1] - s[0]) * u * special.expit(-y) * np.pi * np.cosh(s)
    return u, special.expit(-y), weight


def _bgnbd_conditional_mean(
    x: FloatArray, T: FloatArray, t: float, r: float, alpha: float, a: float, b: float
) -> FloatArray:
    """Return the BG/NBD E[N(T, T + t) | alive at T] by quadrature over the drop-out probability.

    Given alive at T, ``E[N | lambda, p] = (1 - e^(-lambda p t)) / p`` and ``lambda ~ Gamma(r + x,
    alpha + T)``, so ``E[N | alive] = E[g(p)]`` with ``g(p) = (1 - (1 + p t / (alpha + T))^-(r +
    x)) / p`` and ``p ~ Beta(a, b + x)``: equation (10) of Fader, Hardie & Lee (2005) before it
    is written as a Gauss hypergeometric function. That form divides by ``a - 1`` and has
    ``a + b + x - 1`` as a parameter; scipy's hyp2f1 returns NaN for it when ``a + b + x <= 1``
    or the horizon is long. Here the expectation runs over the Beta quantile ``u = I_p(a, b +
    x)``, where ``g(p(u))`` is bounded and monotone, by tanh-sinh quadrature, which is not
    troubled by its power-law behaviour at u = 0 and 1; the quantiles depend on ``x`` only, so
    they are computed once per distinct ``x``.
    """
    u, one_minus_u, weight = _tanh_sinh(_MEAN_NODES)
    distinct, position = np.unique(x, return_inverse=True)
    b_ = b + distinct[:, None]
    lower = u <= 0.5  # the quantile from the nearer tail, accurate at both ends
    quantiles = np.empty((distinct.size, u.size))
    quantiles[:, lower] = special.betaincinv(a, b_, u[lower])
    quantiles[:, ~lower] = special.betainccinv(a, b_, one_minus_u[~lower])
    p = quantiles[position.reshape(np.shape(x))]
    m = (r + x)[..., None]
    y = p * (t / (alpha + T))[..., None]
    # g(p) = m theta * (1 - (1 + y)^-m) / (m y), the last factor 1 at y = 0
    safe = np.where(y > 0, y, 1.0)
    ratio = np.where(y > 0, -np.expm1(-m * np.log1p(safe)) / (m * safe), 1.0)
    return (r + x) * t / (alpha + T) * (weight * ratio).sum(axis=-1)


def _remaining_life_mean(T: FloatArray, t: float, s: float, beta: float) -> FloatArray:
    """Return the Pareto/NBD E[min(lifetime left, t) | alive at T]."""
    # (beta + T) / (s - 1) (1 - ((beta + T) / (beta + T + t))^(s - 1)); exprel covers s ~ 1
    log_ratio = np.log1p(t / (beta + T))
    return (beta + T) * log_ratio * special.exprel(-(s - 1.0) * log_ratio)


def expected_purchases(
    params: BtydParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    horizon_days: float,
) -> FloatArray:
    """Return each customer's expected purchase days in the ``horizon_days`` after the cut-off.

    BG/NBD: equation (10) of Fader, Hardie & Lee (2005), ``P(alive) E[(1 - (1 + p t /
    (alpha + T))^-(r + x)) / p]`` with ``p ~ Beta(a, b + x)``, by tanh-sinh quadrature rather
    than its Gauss hypergeometric form, for which scipy's hyp2f1 fails when ``a + b + x <= 1``
    or the horizon is long (the two agree to ~1e-12 where hyp2f1 works). Pareto/NBD:
    ``P(alive) (r + x) / (alpha + T) E[(1 - e^(-mu t)) / mu]`` with ``mu ~ Gamma(s, beta +
    T)``, that is ``(beta + T) / (s - 1) (1 - ((beta + T) / (beta + T + t))^(s - 1))`` (its log
    limit at ``s = 1``); Schmittlein, Morrison & Colombo (1987), Fader & Hardie note 008.

    Parameters
    ----------
    params
        Fitted parameters.
    x, t_x, T
        Histories in days (see the module docstring).
    horizon_days
        Length ``t`` of the prediction window (T, T + t], in days.

    Returns
    -------
    numpy.ndarray
        Expected purchases, broadcast shape of the inputs.

    Examples
    --------
    >>> params = BtydParams(model="pareto_nbd", r=0.55, alpha=10.58, s=0.61, beta=11.67)
    >>> expected_purchases(params, [0.0, 3.0], [0.0, 250.0], [272.0, 272.0], 365.0).round(3)
    array([0.135, 2.836])
    """
    x_, t_x_, T_ = _history(x, t_x, T, params.time_unit_days)
    t = _horizon(horizon_days, params.time_unit_days)
    alive = np.exp(_log_p_alive(params, x_, t_x_, T_))
    return alive * _alive_mean(params, x_, T_, t)


def _alive_mean(params: BtydParams, x: FloatArray, T: FloatArray, t: float) -> FloatArray:
    """Return E[purchases in (T, T + t] | alive at T], history and horizon in time units."""
    r, alpha = params.r, params.alpha
    if params.model == "bgnbd":
        return _bgnbd_conditional_mean(x, T, t, r, alpha, _get(params.a), _get(params.b))
    life = _remaining_life_mean(T, t, _get(params.s), _get(params.beta))
    return np.asarray((r + x) / (alpha + T) * life, dtype=np.float64)


def _nb_log_pmf(k: Any, shape: Any, log_q: Any, one_mq: Any) -> Any:
    """Return the log-pmf at ``k`` of the negative binomial (Poisson-Gamma) count."""
    return (
        special.gammaln(shape + k)
        - special.gammaln(shape)
        - special.gammaln(k + 1.0)
        + shape * log_q
        + special.xlogy(k, one_mq)  # 0 at k = 0, also for a zero exposure
    )


def _nb_exposure(c: Any, exposure: Any) -> tuple[Any, Any]:
    """Return log q and 1 - q of the count over ``exposure`` with rate ~ Gamma(., c)."""
    return -np.log1p(exposure / c), exposure / (c + exposure)


def _alive_counts(
    params: BtydParams, k: FloatArray, x: FloatArray, T: FloatArray, t: float, *, tail: bool
) -> FloatArray:
    """Return P(N = k | alive at T), or P(N >= k | alive at T) with ``tail``, for t time units.

    Given alive at T the posterior factorises (the likelihood is ``lambda^x e^(-lambda T)``
    times a drop-out factor): ``lambda ~ Gamma(r + x, alpha + T)``, and ``p ~ Beta(a, b + x)``
    (BG/NBD) or ``mu ~ Gamma(s, beta + T)`` (Pareto/NBD).
    """
    shape = params.r + x
    c = params.alpha + T
    if params.model == "bgnbd":
        # P(N >= k | alive) = E[(1 - p)^(k - 1)] P(NB >= k), k >= 1: at least k purchases in t
        # and survived the first k - 1 of them. Written as sums of positive terms:
        # P(N = k) = E[(1-p)^(k-1)] NB(k) + E[(1-p)^(k-1) p] P(NB >= k + 1).
        a, b = _get(params.a), _get(params.b)
        log_q, one_mq = _nb_exposure(c, np.asarray(t))
        kk = np.maximum(k, 1.0)
        log_surv = special.betaln(a, b + x + kk - 1.0) - special.betaln(a, b + x)
        if tail:
            value = np.exp(log_surv) * special.betainc(kk, shape, one_mq)
            return np.where(k == 0, 1.0, value)
        log_drop = special.betaln(a + 1.0, b + x + kk - 1.0) - special.betaln(a, b + x)
        value = np.exp(log_surv + _nb_log_pmf(kk, shape, log_q, one_mq)) + np.exp(
            log_drop
        ) * special.betainc(kk + 1.0, shape, one_mq)
        return np.where(k == 0, np.exp(shape * log_q), value)

    # Pareto/NBD: lifetime left L with P(L > tau) = ((beta + T) / (beta + T + tau))^s; given L
    # the count is NB with exposure min(L, t). The integral over tau in (0, t) runs in
    # w = log(1 + tau / h), h the shorter of the two scales (beta + T for L, alpha + T for the
    # count) so that neither the lifetime density nor the NB pmf changes fast in w.
    s, beta = _get(params.s), _get(params.beta)
    k_b, shape_b, c_b, bT_b = np.broadcast_arrays(k, shape, c, beta + T)
    h = np.minimum(c_b, bT_b)
    w_max = np.log1p(t / h)
    u, weight = _gauss_legendre(_LIFETIME_NODES)
    w = w_max[..., None] * u
    tau = h[..., None] * np.expm1(w)
    # density of L at tau times d tau / d w, in logs
    log_density = (
        math.log(s) + np.log(h / bT_b)[..., None] + w - (s + 1.0) * np.log1p(tau / bT_b[..., None])
    )

    def given_exposure(kk: Any, shape_: Any, c_: Any, exposure: Any) -> Any:
        log_q, one_mq = _nb_exposure(c_, exposure)
        if tail:
            return np.where(kk == 0, 1.0, special.betainc(np.maximum(kk, 1.0), shape_, one_mq))
        return np.exp(_nb_log_pmf(kk, shape_, log_q, one_mq))

    inner = given_exposure(k_b[..., None], shape_b[..., None], c_b[..., None], tau)
    died = w_max * (weight * np.exp(log_density) * inner).sum(axis=-1)
    survived = np.exp(-s * np.log1p(t / bT_b)) * given_exposure(
        k_b, shape_b, c_b, np.full_like(c_b, t)
    )
    return survived + died


def count_pmf(
    params: BtydParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    horizon_days: float,
    k: npt.ArrayLike,
) -> FloatArray:
    """Return P(N = k | history): the distribution of purchase days in the horizon.

    Dead customers buy nothing, so ``P(N = k) = P(alive) P(N = k | alive) + (1 - P(alive))
    1{k = 0}``. Given alive at T the posterior factorises: ``lambda ~ Gamma(r + x, alpha + T)``
    and, for BG/NBD, ``p ~ Beta(a, b + x)``, with ``P(N >= k | alive) = E[(1 - p)^(k - 1)]
    P(NB >= k)`` for ``k >= 1`` (``E[(1 - p)^j] = B(a, b + x + j) / B(a, b + x)``, and NB the
    Poisson-Gamma count over the horizon); for Pareto/NBD, ``mu ~ Gamma(s, beta + T)`` and the
    count is NB over the exposure ``min(L, t)`` with ``L`` the lifetime left, integrated by
    Gauss-Legendre quadrature. Fader & Hardie's notes 039 (BG/NBD, section 5.3) and 008
    (Pareto/NBD) give the same distribution as finite sums.

    Parameters
    ----------
    params
        Fitted parameters.
    x, t_x, T
        Histories in days (see the module docstring).
    horizon_days
        Length of the window (T, T + t] in days.
    k
        Counts (whole numbers >= 0), broadcast against the histories: the observed counts, or
        ``k[:, None]`` for a grid of counts by customer.

    Returns
    -------
    numpy.ndarray
        Probabilities, broadcast shape of ``k`` and the histories.

    Examples
    --------
    >>> params = BtydParams(model="bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> count_pmf(params, [2.0], [213.0], [272.0], 273.0, np.arange(3)[:, None]).round(3)
    array([[0.445],
           [0.239],
           [0.144]])
    """
    x_, t_x_, T_ = _history(x, t_x, T, params.time_unit_days)
    t = _horizon(horizon_days, params.time_unit_days)
    k_ = _counts(k)
    alive = np.exp(_log_p_alive(params, x_, t_x_, T_))
    given_alive = _alive_counts(params, k_, x_, T_, t, tail=False)
    return alive * given_alive + (1.0 - alive) * (k_ == 0)


def _count_sf(
    params: BtydParams, x: FloatArray, t_x: FloatArray, T: FloatArray, t: float, k: FloatArray
) -> FloatArray:
    """Return P(N >= k | history) for histories in time units."""
    alive = np.exp(_log_p_alive(params, x, t_x, T))
    return np.where(k == 0, 1.0, alive * _alive_counts(params, k, x, T, t, tail=True))


def count_pmf_table(
    params: BtydParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    horizon_days: float,
    kmax: int,
) -> FloatArray:
    """Return the purchase count distribution by customer, the tail folded into the last column.

    Parameters
    ----------
    params
        Fitted parameters.
    x, t_x, T
        Histories in days, one per customer (1-d after broadcasting).
    horizon_days
        Length of the window (T, T + t] in days.
    kmax
        Last column: it holds ``P(N >= kmax)``; :func:`count_upper` gives one large enough.

    Returns
    -------
    numpy.ndarray
        Shape (customers, kmax + 1): ``P(N = k)`` for ``k < kmax``, then ``P(N >= kmax)``;
        every row sums to 1.

    Examples
    --------
    >>> params = BtydParams(model="pareto_nbd", r=0.55, alpha=10.58, s=0.61, beta=11.67)
    >>> count_pmf_table(params, [3.0], [250.0], [272.0], 365.0, kmax=2).round(3)
    array([[0.222, 0.168, 0.609]])
    """
    if kmax < 0 or int(kmax) != kmax:
        raise ValueError(f"kmax must be a whole number >= 0, got {kmax}")
    x_, t_x_, T_ = _history(x, t_x, T, params.time_unit_days)
    x_, t_x_, T_ = np.atleast_1d(x_), np.atleast_1d(t_x_), np.atleast_1d(T_)
    if x_.ndim != 1:
        raise ValueError("count_pmf_table takes one-dimensional histories")
    t = _horizon(horizon_days, params.time_unit_days)
    alive = np.exp(_log_p_alive(params, x_, t_x_, T_))
    if kmax == 0:
        return np.ones((x_.size, 1))
    k = np.arange(kmax, dtype=np.float64)[:, None]
    table = np.empty((kmax + 1, x_.size))
    table[:kmax] = alive * _alive_counts(params, k, x_, T_, t, tail=False)
    table[0] += 1.0 - alive
    table[kmax] = alive * _alive_counts(params, np.array([float(kmax)]), x_, T_, t, tail=True)
    return table.T


def count_upper(
    params: BtydParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    horizon_days: float,
    q: float = 0.9999,
    *,
    cap: int = COUNT_CAP,
) -> int:
    """Return a ``kmax`` with ``P(N >= kmax) <= 1 - q`` for every customer of the batch.

    The smallest such ``kmax`` (found by bisection; ``P(N >= k)`` falls with ``k``), but at
    most ``cap`` (1000 by default), which bounds the width of :func:`count_pmf_table` whatever
    the tail; at the cap the table's last column may hold more than ``1 - q``.

    Parameters
    ----------
    params
        Fitted parameters.
    x, t_x, T
        Histories in days.
    horizon_days
        Length of the window (T, T + t] in days.
    q
        Probability the columns before the last must cover, in (0, 1).
    cap
        Largest value returned.

    Returns
    -------
    int
        ``kmax`` for :func:`count_pmf_table`.

    Examples
    --------
    >>> params = BtydParams(model="bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> count_upper(params, [0.0, 2.0], [0.0, 213.0], [272.0, 272.0], 273.0, q=0.99)
    8
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    x_, t_x_, T_ = _history(x, t_x, T, params.time_unit_days)
    t = _horizon(horizon_days, params.time_unit_days)

    def covered(k: int) -> bool:
        return bool(np.all(_count_sf(params, x_, t_x_, T_, t, np.array(float(k))) <= 1.0 - q))

    if x_.size == 0:
        return 0
    low, high = 0, 1  # P(N >= 0) = 1: low is never covered
    while not covered(high):
        if high >= cap:
            return cap
        low, high = high, min(2 * high, cap)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if covered(middle) else (middle, high)
    return high


def expected_spend(
    params: BtydParams, n_days: npt.ArrayLike, monetary: npt.ArrayLike
) -> FloatArray:
    """Return the Gamma-Gamma expected value per transaction of each customer.

    The posterior mean ``(q - 1) / (p n + q - 1) * v p / (q - 1) + p n / (p n + q - 1) * m``
    (Fader, Hardie & Lee 2005, "RFM and CLV", eq. 5), which shrinks a customer's mean ``m``
    over ``n`` transactions towards the population mean ``v p / (q - 1)``; the population mean
    where ``monetary`` is missing (NaN) or ``<= 0``, or ``n == 0``.

    Parameters
    ----------
    params
        Fitted parameters with Gamma-Gamma spend.
    n_days
        Transactions (purchase days, the first included: ``x + 1``) behind ``monetary``.
    monetary
        Mean value per purchase day.

    Returns
    -------
    numpy.ndarray
        Expected spend per transaction, broadcast shape of the inputs, without NaN.

    Raises
    ------
    ValueError
        When ``params`` has no Gamma-Gamma parameters.

    Examples
    --------
    >>> params = BtydParams(model="bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426,
    ...                     p=6.25, q=3.74, v=15.44)
    >>> expected_spend(params, [1.0, 3.0, 0.0], [20.0, 35.0, np.nan]).round(2)
    array([24.64, 35.03, 35.22])
    """
    if params.p is None or params.q is None or params.v is None:
        raise ValueError("these BTYD parameters have no Gamma-Gamma spend (too little spend)")
    p, q, v = params.p, params.q, params.v
    n, m = np.broadcast_arrays(
        np.asarray(n_days, dtype=np.float64), np.asarray(monetary, dtype=np.float64)
    )
    if np.any(~np.isfinite(n)) or np.any(n < 0):
        raise ValueError("n_days must be finite and >= 0")
    known = np.isfinite(m) & (m > 0) & (n > 0)
    n = np.where(known, n, 0.0)
    m = np.where(known, m, 0.0)
    return (v * p + p * n * m) / (p * n + q - 1.0)


def spend_shape(params: BtydParams) -> float:
    """Return the Gamma-Gamma per-transaction shape ``p``, for a compound spend distribution.

    Given a customer's scale ``nu``, each transaction's value is Gamma(``p``, ``nu``).

    Raises
    ------
    ValueError
        When ``params`` has no Gamma-Gamma parameters.

    Examples
    --------
    >>> spend_shape(BtydParams(model="bgnbd", r=0.2, alpha=4.0, a=0.8, b=2.4,
    ...                        p=6.25, q=3.74, v=15.44))
    6.25
    """
    if params.p is None:
        raise ValueError("these BTYD parameters have no Gamma-Gamma spend (too little spend)")
    return params.p


def log_p_purchase(
    params: BtydParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    horizon_days: float,
) -> FloatArray:
    """Return log P(at least one purchase day in the horizon | history), without underflow.

    ``log P(alive) + log P(N >= 1 | alive)``: for a customer away far longer than any seen,
    ``1 - count_pmf(..., 0)`` rounds to 0 long before this does, so the hybrid's margins
    (log-odds of a purchase) keep moving where probabilities have stopped.

    Examples
    --------
    >>> params = BtydParams(model="bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> far = log_p_purchase(params, [2.0], [213.0], [272.0 * 40], 273.0)
    >>> bool(far[0] < -5), bool(np.isfinite(far[0]))
    (True, True)
    """
    x_, t_x_, T_ = _history(x, t_x, T, params.time_unit_days)
    t = _horizon(horizon_days, params.time_unit_days)
    log_alive = _log_p_alive(params, x_, t_x_, T_)
    none = _alive_counts(params, np.zeros_like(x_), x_, T_, t, tail=False)
    return np.asarray(log_alive + np.log1p(-np.minimum(none, 1.0 - 1e-300)), dtype=np.float64)


def horizon_summary(
    params: BtydParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    horizon_days: float,
) -> dict[str, FloatArray]:
    """Return P(alive), expected purchase days, P(no purchase) and log P(purchase) in one pass.

    The same numbers as :func:`p_alive`, :func:`expected_purchases`, ``count_pmf(..., 0)`` and
    :func:`log_p_purchase`, with the history checked and P(alive) computed once (the serving
    path asks for all four for every customer).

    Examples
    --------
    >>> params = BtydParams(model="bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> out = horizon_summary(params, [2.0], [213.0], [272.0], 273.0)
    >>> none = count_pmf(params, [2.0], [213.0], [272.0], 273.0, 0)
    >>> bool(np.isclose(out["p_no_purchase"][0], none[0]))
    True
    """
    x_, t_x_, T_ = _history(x, t_x, T, params.time_unit_days)
    t = _horizon(horizon_days, params.time_unit_days)
    log_alive = _log_p_alive(params, x_, t_x_, T_)
    alive = np.exp(log_alive)
    mean = _alive_mean(params, x_, T_, t)
    none = _alive_counts(params, np.zeros_like(x_), x_, T_, t, tail=False)
    return {
        "p_alive": alive,
        "expected_purchases": alive * mean,
        "p_no_purchase": alive * none + (1.0 - alive),
        "log_p_purchase": np.asarray(
            log_alive + np.log1p(-np.minimum(none, 1.0 - 1e-300)), dtype=np.float64
        ),
    }
