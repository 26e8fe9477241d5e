"""Mean and 95% confidence interval over seeds (Student's t), and the verdict it supports.

With n seeds the interval is ``mean ± t_{0.975, n-1} · s / sqrt(n)`` (s: sample standard
deviation). The t quantiles are tabulated (no scipy at run time); beyond 30 seeds the normal
quantile 1.96 is within 2% of t. Paired comparisons (a recipe vs GRPO on the same seed) take the
interval of the per-seed differences, which removes the variance the seeds share (start-model
evaluation, task stream).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# t_{0.975, df} for df = 1..30 (two-sided 95%).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


@dataclass(frozen=True)
class Interval:
    mean: float
    half: float
    """Half-width of the 95% interval; nan with fewer than two values."""
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half

    def __str__(self) -> str:
        if self.n == 0:
            return "-"
        return f"{self.mean:.3f}" if math.isnan(self.half) else f"{self.mean:.3f} ± {self.half:.3f}"


def t975(df: int) -> float:
    if df < 1:
        raise ValueError(f"a t quantile needs df >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci(values: list[float]) -> Interval:
    """Mean and 95% half-width of ``values`` (nan values are left out)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    m = sum(xs) / n
    if n == 1:
        return Interval(m, math.nan, 1)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return Interval(m, t975(n - 1) * s / math.sqrt(n), n)


def paired_ci(a: list[float], b: list[float]) -> Interval:
    """Interval of the per-seed differences ``a[i] - b[i]``."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    return mean_ci([x - y for x, y in zip(a, b)])


def verdict(diff: Interval) -> str:
    """What an interval of (recipe − baseline) says about a claimed improvement: "reproduced" when
    it lies above 0, "not reproduced" when it lies at or below 0, else "inconclusive"."""
    if diff.n < 2 or math.isnan(diff.half):
        return "inconclusive (one seed)"
    if diff.low > 0:
        return "reproduced"
    if diff.high <= 0:
        return "not reproduced"
    return "inconclusive"
