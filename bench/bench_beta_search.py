"""The calibration search every evaluation pays: the exhaustive gap search against AVCA's 16-value grid, on
validation-sized distances (8,000 videos, 300 candidate classes, 200 of them seen), measured in the same run.

Records seconds per search (bench/record.py), the HM each found and the ratio; asserts nothing.
Run: python bench/bench_beta_search.py [--quick]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from record import figure, quick  # noqa: E402

from kda.metrics import search_beta  # noqa: E402

VIDEOS, CLASSES, SEEN, REPEATS = 8000, 300, 200, 5


def timed_runs(d, labels, seen, grid) -> tuple[list[float], object]:
    times = []
    for _ in range(2 if quick() else REPEATS):
        start = time.perf_counter()
        result = search_beta(d, labels, seen, grid)
        times.append(time.perf_counter() - start)
    return times, result


def main() -> None:
    rng = np.random.default_rng(5)
    d, seen = rng.random((VIDEOS, CLASSES)) * 2, np.arange(CLASSES) < SEEN
    labels = rng.integers(0, CLASSES, size=VIDEOS)
    print(f"beta search on {VIDEOS} videos x {CLASSES} classes; load {os.getloadavg()[0]:.1f}")
    avca_s, avca = timed_runs(d, labels, seen, "avca")
    gaps_s, gaps = timed_runs(d, labels, seen, "gaps")
    print(f"  avca  HM {avca.hm:6.2f}   {avca.grid}")
    print(f"  gaps  HM {gaps.hm:6.2f}   {gaps.grid}")
    figure(
        f"beta search, every gap ({VIDEOS:,} videos x {CLASSES} classes)",
        gaps_s,
        "s",
        baseline=avca_s,
        baseline_what="AVCA's 16-value grid",
        note=f"HM {gaps.hm:.2f} vs {avca.hm:.2f}",
    )


if __name__ == "__main__":
    main()
