"""GZSL metrics: class-averaged seen/unseen accuracy, their harmonic mean, ZSL accuracy, and the
calibrated-stacking search for beta. Pure NumPy on a (videos x candidate classes) distance matrix.

Two beta grids (`BETA_GRIDS`):
    gaps  (default) every beta at which a prediction can change: the midpoints between consecutive
          seen/unseen decision gaps of the scores themselves (`gap_grid`), so the search is exhaustive
          whatever the distance scale
    avca  0, 0.2, ..., 3.0: the benchmark's grid, for exact comparison with published numbers
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from kda.prediction import calibrated

BETA_GRID = np.round(np.arange(0.0, 3.0 + 1e-9, 0.2), 10)  # 0, 0.2, ..., 3.0 (the benchmark's grid)
BETA_GRIDS = ("gaps", "avca")  # the named grids `search_beta` takes; "gaps" is the default


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
    grid: str = ""  # how beta was chosen: the grid searched ("gaps: ...", "avca: ..."), "" when it was given

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
    classes = np.asarray(classes)
    if len(classes) == 0 or len(labels) == 0:
        return 0.0
    size = int(max(classes.max(), labels.max())) + 1
    total = np.bincount(labels, minlength=size)[classes]
    correct = np.bincount(labels[pred == labels], minlength=size)[classes]
    present = total > 0
    return float(np.mean(correct[present] / total[present])) if present.any() else 0.0


def harmonic_mean(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def gzsl_predictions(distances: np.ndarray, seen_mask: np.ndarray, beta: float) -> np.ndarray:
    """Each video's predicted class among all candidates, seen distances calibrated by +beta. (N, C) -> (N,)."""
    return np.argmin(calibrated(np.asarray(distances), np.asarray(seen_mask, dtype=bool), beta), axis=1)


def gzsl_metrics(distances: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, beta: float) -> GZSLResult:
    """distances (N, C) over candidate classes, labels (N,) in [0, C), seen_mask (C,) bool."""
    distances = np.asarray(distances)
    labels = np.asarray(labels)
    seen_mask = np.asarray(seen_mask, dtype=bool)
    seen, unseen = np.flatnonzero(seen_mask), np.flatnonzero(~seen_mask)
    pred = gzsl_predictions(distances, seen_mask, beta)
    s = mean_class_recall(pred, labels, seen)
    u = mean_class_recall(pred, labels, unseen)
    is_unseen = ~seen_mask[labels]
    z = 0.0
    if len(unseen):  # ZSL: the unseen videos among the unseen classes only
        z = mean_class_recall(unseen[distances[is_unseen][:, unseen].argmin(axis=1)], labels[is_unseen], unseen)
    return GZSLResult(100 * s, 100 * u, 100 * harmonic_mean(s, u), 100 * z, float(beta))


def decision_gaps(distances: np.ndarray, seen_mask: np.ndarray) -> np.ndarray:
    """Per video, the nearest unseen distance minus the nearest seen one: the video is predicted seen exactly
    when beta < its gap. (N, C), (C,) -> (N,); +inf without unseen classes, -inf without seen ones."""
    distances = np.asarray(distances, dtype=np.float64)
    seen_mask = np.asarray(seen_mask, dtype=bool)
    inf = np.full(len(distances), np.inf)
    nearest_seen = distances[:, seen_mask].min(axis=1) if seen_mask.any() else inf
    nearest_unseen = distances[:, ~seen_mask].min(axis=1) if (~seen_mask).any() else inf
    return nearest_unseen - nearest_seen


def gap_grid(distances: np.ndarray, seen_mask: np.ndarray) -> np.ndarray:
    """Every distinct calibrated-stacking outcome with beta >= 0, one beta each, ascending.

    Adding beta to the seen distances only moves a video from its nearest seen class to its nearest unseen
    class, and that happens when beta crosses its decision gap (`decision_gaps`). So S, U and HM are
    constant between consecutive distinct gaps, and this grid - 0, the midpoint of every interval between
    consecutive positive gaps, and one step past the largest gap - visits each attainable result once:
    the search is exhaustive on any distance scale (unit vectors give distances in [0, 2], where AVCA's
    0..3 grid is coarse and partly void). Midpoints, not the gaps themselves, keep the chosen beta as far
    as possible from the validation videos it separates, which is what transfers to test videos.
    """
    gaps = decision_gaps(distances, seen_mask)
    positive = np.unique(gaps[np.isfinite(gaps) & (gaps > 0)])  # sorted
    if len(positive) == 0:
        return np.zeros(1)
    step = max(float(np.diff(positive).min()) if len(positive) > 1 else 0.0, 1e-6 * max(1.0, positive[-1]))
    return np.concatenate([[0.0], (positive[:-1] + positive[1:]) / 2, [positive[-1] + step]])


def grid_betas(grid: str | np.ndarray, distances: np.ndarray, seen_mask: np.ndarray) -> tuple[np.ndarray, str]:
    """The betas of a named grid (or an explicit array) and a one-line description for the results."""
    if isinstance(grid, str):
        if grid == "avca":
            return BETA_GRID, f"avca: 0..3 step 0.2 ({len(BETA_GRID)} values)"
        if grid == "gaps":
            betas = gap_grid(distances, seen_mask)
            return betas, f"gaps: {len(betas)} values in [0, {betas[-1]:.4g}] (every seen/unseen decision gap)"
        raise ValueError(f"unknown beta grid {grid!r}; choose one of {', '.join(BETA_GRIDS)}")
    betas = np.asarray(grid)
    return betas, f"given: {len(betas)} values in [{betas.min():.4g}, {betas.max():.4g}]"


def search_beta(
    distances: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, betas: str | np.ndarray = "gaps"
) -> GZSLResult:
    """The result at the beta with the best HM (the smallest such beta on ties), over a named grid
    (`BETA_GRIDS`) or an explicit array of betas. The grid used is recorded in the result's `grid`."""
    fast = isinstance(betas, str) and betas == "gaps"
    betas, described = grid_betas(betas, distances, seen_mask)
    if fast:  # hundreds to thousands of betas: all HMs at once, then the chosen one computed plainly
        hms = hm_per_beta(distances, labels, seen_mask, betas)
        best = float(betas[int(np.argmax(hms))])  # argmax: the first, i.e. smallest, beta on ties
        result = gzsl_metrics(distances, labels, seen_mask, best)
    else:  # a short explicit grid: every beta computed plainly, exact even where a beta equals a gap
        result = max((gzsl_metrics(distances, labels, seen_mask, b) for b in betas), key=lambda r: (r.hm, -r.beta))
    return GZSLResult(result.seen, result.unseen, result.hm, result.zsl, result.beta, described)


def hm_per_beta(distances: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """HM (percent) at every beta at once, in O((N + B) log N): a video counts for its true class when it is
    right among the seen classes and stays seen (beta < gap), or right among the unseen ones and moves
    (beta >= gap). Same numbers as `gzsl_metrics` per beta, up to exact ties of two distances (tested)."""
    distances, labels = np.asarray(distances), np.asarray(labels)
    seen_mask = np.asarray(seen_mask, dtype=bool)
    seen, unseen = np.flatnonzero(seen_mask), np.flatnonzero(~seen_mask)
    if len(seen) == 0 or len(unseen) == 0:
        return np.array([gzsl_metrics(distances, labels, seen_mask, b).hm for b in betas])
    right_seen = seen[distances[:, seen].argmin(axis=1)] == labels  # (N,) right if it stays seen
    right_unseen = unseen[distances[:, unseen].argmin(axis=1)] == labels  # (N,) right if it moves
    counts = np.bincount(labels, minlength=len(seen_mask))
    label_seen = seen_mask[labels]
    # Each video's share of S (or U): 1 / (videos of its class * classes present in its group).
    weight = 1.0 / counts[labels]
    weight = weight / np.where(label_seen, (counts[seen] > 0).sum(), (counts[unseen] > 0).sum())
    gaps = decision_gaps(distances, seen_mask)
    order = np.argsort(gaps)
    moved = np.searchsorted(gaps[order], betas, side="right")  # per beta, the first `moved` videos go unseen
    stays = ((right_seen & label_seen) * weight)[order]  # each video's share of S while it stays seen
    moves = ((right_unseen & ~label_seen) * weight)[order]  # and of U once it moves
    s = np.append(np.cumsum(stays[::-1])[::-1], 0.0)[moved]  # the videos from `moved` on stay
    u = np.insert(np.cumsum(moves), 0, 0.0)[moved]  # the first `moved` have moved
    return 100 * 2 * s * u / np.maximum(s + u, 1e-300)
