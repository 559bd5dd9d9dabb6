import numpy as np
import pytest

from kda import metrics
from kda.evaluation import Evaluation
from kda.metrics import (
    BETA_GRID,
    decision_gaps,
    gap_grid,
    gzsl_metrics,
    harmonic_mean,
    hm_per_beta,
    mean_class_recall,
    search_beta,
)


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


D = np.array([[0.1, 0.5, 0.3], [0.4, 0.2, 0.8], [0.9, 0.3, 0.4]])  # 3 videos x 3 classes


def test_gaps_are_nearest_unseen_minus_nearest_seen():
    # seen = classes 0 and 1, unseen = class 2: nearest seen 0.1, 0.2, 0.3; unseen 0.3, 0.8, 0.4
    np.testing.assert_allclose(decision_gaps(D, np.array([True, True, False])), [0.2, 0.6, 0.1])
    np.testing.assert_allclose(decision_gaps(D, [1, 1, 0]), [0.2, 0.6, 0.1])  # a 0/1 mask is a mask, not indices
    # float32 scores (a model's): the gaps are taken in float64, where the plain metrics compare beta with them
    single = D.astype(np.float32)
    exact = single[:, 2].astype(np.float64) - single[:, :2].min(axis=1).astype(np.float64)
    np.testing.assert_array_equal(decision_gaps(single, [True, True, False]), exact)


def test_gaps_without_unseen_or_seen_classes():
    assert decision_gaps(D, [True, True, True]).tolist() == [np.inf] * 3  # always predicted seen
    assert decision_gaps(D, [False, False, False]).tolist() == [-np.inf] * 3  # never
    assert gap_grid(D, [True, True, True]).tolist() == [0.0]
    assert gap_grid(D, [False, False, False]).tolist() == [0.0]


def test_the_grid_is_zero_every_midpoint_and_one_step_past_the_largest_gap():
    seen = np.array([True, True, False])
    # gaps 0.2, 0.6, 0.1 -> 0, midpoints 0.15 and 0.4, then 0.6 + the smallest spacing (0.1)
    np.testing.assert_allclose(gap_grid(D, seen), [0.0, 0.15, 0.4, 0.7])
    one = D[:1]  # a single positive gap: 0 and one step past it (at least 1e-6)
    np.testing.assert_allclose(gap_grid(one, seen), [0.0, 0.2 + 1e-6])
    # far from 1, the step scales with the gap: 1e-6 alone would not move 1e12 (the video would stay seen)
    np.testing.assert_array_equal(gap_grid([[0.0, 1e12]], [True, False]), [0.0, 1e12 + 1e6])
    tied = np.array([[0.2, 0.9, 0.2], [0.1, 0.9, 0.5]])  # gaps 0 (a tie) and 0.4: the tie adds no beta
    np.testing.assert_allclose(gap_grid(tied, seen), [0.0, 0.4 + 1e-6])


def test_search_beta_moves_exactly_the_videos_it_should():
    seen = np.array([True, True, False])
    labels = np.array([2, 1, 2])  # videos 0 and 2 are unseen: both must move, video 1 must stay
    best = search_beta(D, labels, seen)
    assert best.beta == pytest.approx(0.4) and best.hm == pytest.approx(100.0)


def test_search_result_is_the_plain_metrics_at_the_chosen_beta():
    seen = np.array([True, True, False])
    # Video 0 is unseen (class 2, gap 0.2); videos 1 and 2 are class 1, right while seen (gaps 0.6 and 0.1).
    # Over the grid 0, 0.15, 0.4, 0.7: (S, U) = (100, 0), (50, 0), (50, 100), (0, 100). Only 0.4 has both,
    # trading video 2 for video 0: HM 2 * 50 * 100 / 150. ZSL: video 0 among the unseen classes is right.
    best = search_beta(D, np.array([2, 1, 1]), seen)
    assert (best.seen, best.unseen, best.hm, best.zsl) == (50.0, 100.0, pytest.approx(200 / 3), 100.0)
    assert best.beta == pytest.approx(0.4)
    assert best.grid == "gaps: 4 values in [0, 0.7] (every seen/unseen decision gap)"
    # Labels 2, 0, 1: video 1 is wrong even while seen, so S and U are never both above 0 and HM is 0 at
    # every beta; the tie goes to the smallest beta, 0: S = (0 + 100) / 2, U 0, ZSL 100.
    tied = search_beta(D, np.array([2, 0, 1]), seen)
    assert (tied.seen, tied.unseen, tied.hm, tied.zsl, tied.beta) == (50.0, 0.0, 0.0, 100.0, 0.0)


def test_metrics_with_an_integer_mask_or_without_unseen_classes():
    from kda.metrics import mean_class_recall

    labels = np.array([0, 1, 2])
    as_bool = gzsl_metrics(D, labels, np.array([True, True, False]), 0.25)
    assert gzsl_metrics(D, labels, [1, 1, 0], 0.25) == as_bool  # 0/1 integers mean the same mask
    all_seen = gzsl_metrics(D, labels, [True, True, True], 0.0)  # predictions 0, 1, 1
    assert (all_seen.seen, all_seen.unseen, all_seen.hm, all_seen.zsl) == (pytest.approx(200 / 3), 0.0, 0.0, 0.0)
    assert mean_class_recall(np.array([], int), np.array([], int), np.array([0, 1])) == 0.0  # no videos: 0, not 1
    assert mean_class_recall(np.array([1]), np.array([1]), np.array([], int)) == 0.0


def test_search_with_a_mask_of_integers_or_lists():
    """0/1 integers and plain lists mean what the boolean arrays mean (`~` on an integer mask would not)."""
    seen, labels = np.array([True, True, False]), np.array([2, 1, 1])
    best = search_beta(D, labels, seen)
    assert search_beta(D.tolist(), labels.tolist(), [1, 1, 0]) == best
    betas = [0.0, 0.15, 0.4]
    from_lists = hm_per_beta(D.tolist(), labels.tolist(), [1, 1, 0], betas)
    np.testing.assert_array_equal(from_lists, hm_per_beta(D, labels, seen, betas))
    np.testing.assert_allclose(from_lists, [0.0, 0.0, 200 / 3])  # the hand values of the case above


def test_hm_per_beta_without_seen_classes_unseen_classes_or_videos():
    betas = [0.0, 0.15, 0.4]
    labels = np.array([2, 1, 1])
    assert hm_per_beta(D, labels, [True, True, True], betas).tolist() == [0.0] * 3  # U is 0 at every beta
    assert hm_per_beta(D, labels, [False, False, False], betas).tolist() == [0.0] * 3  # S is 0
    assert hm_per_beta(D[:0], labels[:0], [True, True, False], betas).tolist() == [0.0] * 3


def test_a_beta_exactly_at_a_gap():
    """The decision gaps' rule: a video moves to its unseen class when beta >= its gap. At beta == gap the two
    distances tie, and the plain metrics' argmin takes the lower class index: here the unseen class, 0."""
    d = np.array([[0.75, 0.5], [1.0, 0.25]])  # gaps 0.25 (an unseen video) and 0.75 (a seen one): exact in binary
    labels, seen = np.array([0, 1]), np.array([False, True])
    assert hm_per_beta(d, labels, seen, [0.125, 0.25, 0.5, 0.75]).tolist() == [0.0, 100.0, 100.0, 0.0]
    assert [gzsl_metrics(d, labels, seen, b).hm for b in (0.25, 0.75)] == [100.0, 0.0]


def test_an_explicit_grid_is_computed_plainly_where_a_beta_equals_a_gap():
    """With the seen class first, the tie at beta == gap goes to the seen class, as `gzsl_metrics` has it:
    the unseen video moves only at the next AVCA beta, 0.4, not at its gap 0.2."""
    d = np.array([[0.0, 0.2], [0.0, 3.5]])  # video 0: unseen class 1, gap 0.2; video 1: seen class 0, gap 3.5
    best = search_beta(d, np.array([1, 0]), np.array([True, False]), "avca")
    assert (best.hm, best.beta) == (100.0, 0.4)
    assert gzsl_metrics(d, np.array([1, 0]), np.array([True, False]), 0.2).hm == 0.0


def test_the_gap_search_scores_all_its_betas_at_once(monkeypatch):
    """The gap grid has a beta per validation video: the search scores them together (`hm_per_beta`) and
    computes the plain metrics once, at the beta it chose."""
    chosen = []
    plain = metrics.gzsl_metrics
    monkeypatch.setattr(metrics, "gzsl_metrics", lambda *args: chosen.append(args[3]) or plain(*args))
    best = search_beta(D, np.array([2, 1, 1]), np.array([True, True, False]))
    assert chosen == [best.beta] and best.beta == pytest.approx(0.4)
    assert metrics.hm_per_beta(D, np.array([2, 1, 1]), [True, True, False], [0.0, 0.4])[1] == pytest.approx(200 / 3)
    assert chosen == [best.beta]  # still only the one


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
