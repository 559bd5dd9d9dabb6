"""The calibrated-stacking search over the decision gaps of the scores (kda.metrics.gap_grid)."""

import numpy as np
import pytest

from kda.evaluation import Evaluation
from kda.metrics import BETA_GRID, decision_gaps, gap_grid, gzsl_metrics, hm_per_beta, search_beta


def random_case(rng, scale=2.0):
    n, c = int(rng.integers(20, 80)), int(rng.integers(4, 12))
    d = rng.random((n, c)) * scale
    labels = rng.integers(0, c, size=n)
    seen = rng.random(c) < 0.5
    seen[0], seen[-1] = True, False
    return d, labels, seen


def test_hand_computed_gaps_and_grid():
    d = np.array([[0.3, 0.6, 0.5], [0.1, 0.9, 0.8], [0.7, 0.9, 0.2]])  # classes 0, 1 seen; 2 unseen
    seen = np.array([True, True, False])
    assert decision_gaps(d, seen) == pytest.approx([0.2, 0.7, -0.5])
    # 0, the midpoint of the two positive gaps, and one step past the largest.
    assert gap_grid(d, seen) == pytest.approx([0.0, 0.45, 1.2])
    best = search_beta(d, np.array([2, 0, 2]), seen)
    assert best.hm == 100.0 and best.beta == pytest.approx(0.45) and best.grid.startswith("gaps: 3 values")


def test_fast_hm_matches_the_plain_metrics_at_every_beta():
    rng = np.random.default_rng(1)
    for _ in range(20):
        d, labels, seen = random_case(rng)
        betas = gap_grid(d, seen)
        plain = [gzsl_metrics(d, labels, seen, b).hm for b in betas]
        assert hm_per_beta(d, labels, seen, betas) == pytest.approx(plain)
        some = labels < labels.max()  # the last class present now has no videos
        plain = [gzsl_metrics(d[some], labels[some], seen, b).hm for b in betas]
        assert hm_per_beta(d[some], labels[some], seen, betas) == pytest.approx(plain)


def test_the_gap_search_is_exhaustive():
    """No beta, on any grid, beats the gap search: every attainable outcome is on its grid."""
    rng = np.random.default_rng(2)
    for _ in range(20):
        d, labels, seen = random_case(rng, scale=float(rng.choice([0.1, 2.0, 50.0])))
        best = search_beta(d, labels, seen)
        fine = max(gzsl_metrics(d, labels, seen, b).hm for b in np.linspace(0, d.max(), 601))
        assert best.hm >= fine - 1e-9
        assert best.hm >= search_beta(d, labels, seen, "avca").hm - 1e-9
        assert best == search_beta(d, labels, seen, "gaps")  # deterministic


def test_avca_grid_is_kept_and_recorded():
    rng = np.random.default_rng(3)
    d, labels, seen = random_case(rng)
    avca = search_beta(d, labels, seen, "avca")
    explicit = search_beta(d, labels, seen, BETA_GRID)
    assert avca.beta in BETA_GRID and avca.grid == "avca: 0..3 step 0.2 (16 values)"
    assert (avca.hm, avca.beta) == (explicit.hm, explicit.beta)
    with pytest.raises(ValueError, match="gaps, avca"):
        search_beta(d, labels, seen, "fine")


def test_evaluation_searches_the_gaps_by_default():
    rng = np.random.default_rng(4)
    d, labels, seen = random_case(rng)
    evaluation = Evaluation(d, labels, list(range(d.shape[1])), seen, [""] * len(labels))
    assert evaluation.metrics().grid.startswith("gaps:")
    assert evaluation.metrics(grid="avca").grid.startswith("avca:")
    assert evaluation.metrics(0.3).grid == ""
