"""GZSL metrics: class-averaged seen/unseen accuracy, their harmonic mean, ZSL accuracy, and the
calibrated-stacking search for beta. Pure NumPy on a (videos x candidate classes) distance matrix."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

BETA_GRID = np.round(np.arange(0.0, 3.0 + 1e-9, 0.2), 10)  # 0, 0.2, ..., 3.0 (the benchmark's grid)


@dataclass(frozen=True)
class GZSLResult:
    """Percentages (0-100). seen/unseen: mean per-class recall of seen/unseen videos predicted among all
    candidate classes with `beta` added to seen distances; hm: their harmonic mean; zsl: unseen videos
    predicted among unseen classes only."""

    seen: float
    unseen: float
    hm: float
    zsl: float
    beta: float

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self, title: str = "") -> str:
        head = f"{'':<10}{'S':>8}{'U':>8}{'HM':>8}{'ZSL':>8}{'beta':>7}"
        row = f"{title:<10}{self.seen:8.2f}{self.unseen:8.2f}{self.hm:8.2f}{self.zsl:8.2f}{self.beta:7.2f}"
        return f"{head}\n{row}"

    def __str__(self) -> str:
        return self.table()


def mean_class_recall(pred: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> float:
    """Mean over `classes` of the fraction of that class's videos predicted correctly. Classes with no
    videos are left out of the mean (they have no recall); with no videos at all the result is 0."""
    classes = np.asarray(classes, dtype=np.int64)
    if len(classes) == 0 or len(labels) == 0:
        return 0.0
    size = int(max(classes.max(), labels.max())) + 1
    total = np.bincount(labels, minlength=size)[classes]
    correct = np.bincount(labels[pred == labels], minlength=size)[classes]
    present = total > 0
    return float(np.mean(correct[present] / total[present])) if present.any() else 0.0


def harmonic_mean(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def gzsl_metrics(distances: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, beta: float) -> GZSLResult:
    """distances (N, C) over candidate classes, labels (N,) in [0, C), seen_mask (C,) bool."""
    distances = np.asarray(distances, dtype=np.float64)
    labels = np.asarray(labels)
    seen_mask = np.asarray(seen_mask, dtype=bool)
    seen, unseen = np.flatnonzero(seen_mask), np.flatnonzero(~seen_mask)
    pred = np.argmin(distances + beta * seen_mask, axis=1)
    s = mean_class_recall(pred, labels, seen)
    u = mean_class_recall(pred, labels, unseen)
    is_unseen = ~seen_mask[labels]
    zsl_pred = unseen[np.argmin(distances[is_unseen][:, unseen], axis=1)] if len(unseen) else np.array([], int)
    z = mean_class_recall(zsl_pred, labels[is_unseen], unseen)
    return GZSLResult(100 * s, 100 * u, 100 * harmonic_mean(s, u), 100 * z, float(beta))


def search_beta(
    distances: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, betas: np.ndarray = BETA_GRID
) -> GZSLResult:
    """The result at the beta with the best HM (the smallest such beta on ties)."""
    results = [gzsl_metrics(distances, labels, seen_mask, b) for b in betas]
    return max(results, key=lambda r: (r.hm, -r.beta))
