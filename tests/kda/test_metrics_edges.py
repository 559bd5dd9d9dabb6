"""The calibrated-stacking search at its edges, worked out by hand: the decision gaps when a stage has no seen or
no unseen class, a seen mask given as 0/1 integers, and the exact grid of betas the search tries."""

import numpy as np
import pytest

from kda import metrics
from kda.metrics import decision_gaps, gap_grid, gzsl_metrics, hm_per_beta, search_beta

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
