"""Means, standard deviations and the one-sided Welch test the challenge asks of a new record.

The t distribution's tail comes from the regularized incomplete beta function, computed here with
the continued fraction of Numerical Recipes (Lentz's method): a few lines instead of SciPy, whose
only use in golf-audit would be this one function. Accuracy is ~1e-12, far below what a p-value
threshold of 0.01 needs; the tests compare it with published table values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_IMPROVEMENT_NATS = 0.005
ALPHA = 0.01


def mean(xs: list[float]) -> float:
    return math.fsum(xs) / len(xs)


def std(xs: list[float], ddof: int = 1) -> float | None:
    """Standard deviation (sample, ``ddof=1``, by default); None when there are too few values."""
    if len(xs) - ddof < 1:
        return None
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - ddof))


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (df may be fractional, as Welch's is)."""
    if math.isnan(t) or df <= 0:
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


@dataclass
class WelchResult:
    t: float
    df: float
    p: float
    improvement: float  # baseline mean - candidate mean, in the unit of the inputs
    margin: float  # the improvement the test asks for, same unit
    n: int
    n_baseline: int

    @property
    def significant(self) -> bool:
        return self.p < ALPHA


def welch_improvement(candidate: list[float], baseline: list[float], margin: float) -> WelchResult | None:
    """One-sided Welch test of H1: mean(baseline) - mean(candidate) > margin (lower is better).

    A baseline of one value is a fixed target (variance 0): the test is then a one-sample t test
    with n - 1 degrees of freedom. Needs two candidate values; returns None otherwise or when
    neither side varies.
    """
    n, nb = len(candidate), len(baseline)
    if n < 2 or nb < 1:
        return None
    vc = std(candidate) ** 2 / n
    vb = (std(baseline) ** 2 / nb) if nb >= 2 else 0.0
    se2 = vc + vb
    improvement = mean(baseline) - mean(candidate)
    if se2 <= 0.0:
        return None
    se = math.sqrt(se2)
    t = (improvement - margin) / se
    den = (vc * vc / (n - 1) if vc > 0 else 0.0) + (vb * vb / (nb - 1) if vb > 0 else 0.0)
    df = se2 * se2 / den if den > 0 else float(n - 1)
    return WelchResult(t=t, df=df, p=t_sf(t, df), improvement=improvement, margin=margin, n=n, n_baseline=nb)
