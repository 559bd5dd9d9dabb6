import numpy as np
import pytest

from kda.metrics import BETA_GRID, gzsl_metrics, harmonic_mean, mean_class_recall, search_beta


def reference_metrics(distances, labels, seen_mask, beta):
    """Plain loops over videos and classes, written independently of kda.metrics."""
    n, c = distances.shape
    pred = [min(range(c), key=lambda j: distances[i][j] + (beta if seen_mask[j] else 0.0)) for i in range(n)]
    unseen_cols = [j for j in range(c) if not seen_mask[j]]
    zsl_pred = [min(unseen_cols, key=lambda j: distances[i][j]) for i in range(n)]

    def recall(preds, cls, only_unseen=False):
        idx = [i for i in range(n) if labels[i] == cls and (not only_unseen or not seen_mask[labels[i]])]
        return None if not idx else sum(preds[i] == cls for i in idx) / len(idx)

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else 0.0

    s = mean(recall(pred, j) for j in range(c) if seen_mask[j])
    u = mean(recall(pred, j) for j in range(c) if not seen_mask[j])
    z = mean(recall(zsl_pred, j, True) for j in unseen_cols)
    hm = 2 * s * u / (s + u) if s + u else 0.0
    return 100 * s, 100 * u, 100 * hm, 100 * z


def test_hand_computed_case():
    # Classes 0, 1 seen; 2 unseen. Four videos.
    d = np.array(
        [
            [0.1, 0.5, 0.9],  # label 0 -> predicts 0
            [0.4, 0.2, 0.3],  # label 1 -> predicts 1
            [0.3, 0.6, 0.5],  # label 2 -> predicts 0 (wrong), ZSL predicts 2
            [0.9, 0.8, 0.1],  # label 2 -> predicts 2
        ]
    )
    labels = np.array([0, 1, 2, 2])
    seen = np.array([True, True, False])
    r = gzsl_metrics(d, labels, seen, beta=0.0)
    assert r.seen == pytest.approx(100.0)
    assert r.unseen == pytest.approx(50.0)
    assert r.hm == pytest.approx(2 * 100 * 50 / 150)
    assert r.zsl == pytest.approx(100.0)


def test_calibrated_stacking_moves_predictions_to_unseen():
    d = np.array([[0.3, 0.6, 0.5], [0.1, 0.9, 0.8]])  # both nearest to seen class 0
    labels = np.array([2, 0])
    seen = np.array([True, True, False])
    assert gzsl_metrics(d, labels, seen, beta=0.0).unseen == 0.0
    # beta 0.3: video 0 -> 0.6 vs 0.5 -> unseen class 2 wins; video 1 -> 0.4 vs 0.8 stays seen.
    r = gzsl_metrics(d, labels, seen, beta=0.3)
    assert (r.seen, r.unseen) == (100.0, 100.0)
    best = search_beta(d, labels, seen, BETA_GRID)
    assert best.hm == 100.0 and best.beta == pytest.approx(0.4)  # smallest grid beta > 0.2 that works


def test_class_without_samples_is_left_out_of_the_mean():
    d = np.array([[0.1, 0.9, 0.9, 0.8], [0.9, 0.9, 0.1, 0.8]])
    labels = np.array([0, 2])  # seen class 1 and unseen class 3 have no videos
    seen = np.array([True, True, False, False])
    r = gzsl_metrics(d, labels, seen, beta=0.0)
    assert r.seen == 100.0 and r.unseen == 100.0 and r.zsl == 100.0


def test_matches_plain_reference_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, c = rng.integers(5, 40), rng.integers(3, 9)
        d = rng.random((n, c))
        labels = rng.integers(0, c, size=n)
        seen = rng.random(c) < 0.5
        seen[0], seen[-1] = True, False
        beta = float(rng.choice(BETA_GRID[:4]))
        r = gzsl_metrics(d, labels, seen, beta)
        assert (r.seen, r.unseen, r.hm, r.zsl) == pytest.approx(reference_metrics(d, labels, seen, beta))


def test_helpers_and_serialisation():
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert mean_class_recall(np.array([1]), np.array([1]), np.array([0, 1])) == 1.0
    r = gzsl_metrics(np.array([[0.0, 1.0]]), np.array([0]), np.array([True, False]), 0.0)
    # One seen video, predicted right: S 100; no unseen videos: U, HM and ZSL 0; beta given, so no grid.
    assert r.to_dict() == {"seen": 100.0, "unseen": 0.0, "hm": 0.0, "zsl": 0.0, "beta": 0.0, "grid": ""}
    head, row = r.table().splitlines()
    assert head.split() == ["S", "U", "HM", "ZSL", "beta"]
    assert row.split() == ["100.00", "0.00", "0.00", "0.00", "0.00"]  # no title: the values alone
    assert len(BETA_GRID) == 16 and BETA_GRID[-1] == pytest.approx(3.0)
