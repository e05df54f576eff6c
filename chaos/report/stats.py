"""Percentiles and rates, defined once so every page and test agrees on them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


def finite(values: Iterable[float | int | None]) -> list[float]:
    """The finite numbers among ``values`` (None, NaN and infinities are dropped)."""
    return [float(v) for v in values
            if v is not None and not isinstance(v, bool) and math.isfinite(v)]


def percentile(values: Iterable[float | int | None], q: float) -> float | None:
    """The q-th percentile (0..100), linear between closest ranks; None without data.

    This is the "inclusive" method (numpy's default): p50 of [1, 2, 3, 4] is 2.5,
    p95 of 1..20 is 19.05, and one value is every percentile of itself.
    """
    data = sorted(finite(values))
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True)
class Spread:
    """p50/p95 of one quantity over repeats, and how many repeats had a value."""

    p50: float | None
    p95: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | int | None]) -> Spread:
        data = finite(values)
        return cls(percentile(data, 50), percentile(data, 95), len(data))


def rate(passed: int, total: int) -> float | None:
    return passed / total if total else None
