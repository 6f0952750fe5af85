"""
The benchmarks' statistics: one summary of samples, paired ratios, rounding, and one timing helper.

Every benchmark script (``bench.py``, ``credential_lookup.py``, ``secrets_lookup.py``,
``register_connection.py``) summarizes its samples with :func:`summary`, so every result reads the
same way: ``{"n", "median", "p10", "p90", "min", "max"}`` (and ``"unit"`` when given).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# What a sample counts in, as a multiple of one second.
UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}


def round_sig(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (results stay readable, spreads stay visible)."""
    return float(f"{value:.{digits}g}")


def summary(samples: Iterable[float | None], unit: str | None = None) -> dict[str, Any]:
    """
    n, median, p10, p90, min and max of ``samples`` (rounded); ``None`` samples are left out.

    :param samples: the measurements.
    :param unit: recorded as ``"unit"`` when given (``"ms"``, ``"s"``, ...).
    """
    ordered = sorted(s for s in samples if s is not None)
    result: dict[str, Any] = {"unit": unit} if unit else {}
    if not ordered:
        return {**result, "n": 0}
    if len(ordered) >= 2:
        deciles = statistics.quantiles(ordered, n=10, method="inclusive")
        p10, p90 = deciles[0], deciles[-1]
    else:
        p10 = p90 = ordered[0]
    return {
        **result,
        "n": len(ordered),
        "median": round_sig(statistics.median(ordered)),
        "p10": round_sig(p10),
        "p90": round_sig(p90),
        "min": round_sig(ordered[0]),
        "max": round_sig(ordered[-1]),
    }


def paired_ratios(numerators: Sequence[float | None], denominators: Sequence[float | None]) -> dict[str, Any]:
    """Ratios of samples taken in the same round (pair by pair, a missing side skips the pair), summarized."""
    return summary(
        a / b for a, b in zip(numerators, denominators, strict=True) if a is not None and b is not None and b > 0
    )


def time_samples(fn: Callable[[], object], repeat: int, unit: str = "ms") -> list[float]:
    """Call ``fn`` ``repeat`` times; the duration of each call, in ``unit``."""
    scale = UNITS[unit]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * scale)
    return samples
