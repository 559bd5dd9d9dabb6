"""The calibration search every evaluation pays: the exhaustive gap search against AVCA's 16-value grid, on
validation-sized distances (8,000 videos, 300 candidate classes, 200 of them seen), measured in the same run.

Prints seconds per search, the number of betas each tried, the HM each found and the ratio; asserts nothing.
Run: python bench/bench_beta_search.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kda.metrics import search_beta  # noqa: E402

VIDEOS, CLASSES, SEEN, REPEATS = 8000, 300, 200, 5


def best_seconds(d, labels, seen, grid) -> tuple[float, object]:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = search_beta(d, labels, seen, grid)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    rng = np.random.default_rng(5)
    d, seen = rng.random((VIDEOS, CLASSES)) * 2, np.arange(CLASSES) < SEEN
    labels = rng.integers(0, CLASSES, size=VIDEOS)
    print(f"beta search on {VIDEOS} videos x {CLASSES} classes, best of {REPEATS}; load {os.getloadavg()[0]:.1f}")
    avca_s, avca = best_seconds(d, labels, seen, "avca")
    gaps_s, gaps = best_seconds(d, labels, seen, "gaps")
    print(f"  avca  {avca_s * 1000:8.1f} ms   HM {avca.hm:6.2f}   {avca.grid}")
    print(f"  gaps  {gaps_s * 1000:8.1f} ms   HM {gaps.hm:6.2f}   {gaps.grid}")
    print(f"  gaps / avca time: {gaps_s / avca_s:.2f}x")


if __name__ == "__main__":
    main()
