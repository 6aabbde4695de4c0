"""What the execution benches share: percentiles and the p50/p99/mean table with the target verdict."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

TARGET_P99_MS = 20.0  # issue 6: p99 of our own overhead beyond the server's time


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def load_per_core() -> float:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def print_figures(figures: dict[str, list[float]], rows: Sequence[tuple[str, str]]) -> None:
    """One line per (name in `figures`, label), then the verdict on `figures["ours"]`."""
    width = max(len(label) for _, label in rows)
    print(f"{'':>{width}} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}")
    for name, label in rows:
        values = figures[name]
        print(f"{label:>{width}} {percentile(values, 0.5):9.3f} {percentile(values, 0.99):9.3f} "
              f"{statistics.fmean(values):9.3f}")
    p99 = percentile(figures["ours"], 0.99)
    verdict = "OK" if p99 < TARGET_P99_MS else "MISSED"
    print(f"our overhead p99 {p99:.3f} ms vs target {TARGET_P99_MS:.0f} ms: ratio {p99 / TARGET_P99_MS:.2f} "
          f"-> {verdict}")
