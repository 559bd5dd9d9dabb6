"""`kda.prediction`: the ranking a person reads (`Prediction.ranked`) is the one the top-k come from."""

import numpy as np
import pytest

from kda.prediction import Candidates, calibrated, predict


def random_prediction(seed: int, classes: int = 30, top_k: int = 30, ties: bool = False):
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(classes, 8))
    if ties:  # pairs of classes at the same place: equal distances, so the order of ties counts
        matrix[1::2] = matrix[::2]
    seen = rng.random(classes) < 0.7
    candidates = Candidates([f"c{i}" for i in range(classes)], [f"C {i}" for i in range(classes)], seen, matrix)
    rows = rng.normal(size=(3, 8))
    return predict(
        rows, candidates, beta=0.4, tau=0.1, top_k=top_k, audio=np.zeros(1), visual=np.zeros(1), has_audio=True,
        source="test", notes=[],
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_ranked_is_the_order_of_gzsl_and_zsl_with_the_distance_each_ranks_by(seed, ties):
    prediction = random_prediction(seed, ties=ties)
    gzsl = prediction.ranked()
    assert [s.class_id for s, _ in gzsl] == [s.class_id for s in prediction.gzsl]  # top_k covers every class
    d = np.array([s.distance for s in prediction.scores])
    seen = np.array([s.seen for s in prediction.scores])
    by_id = dict(zip([s.class_id for s in prediction.scores], calibrated(d, seen, prediction.beta), strict=True))
    assert [r for _, r in gzsl] == [by_id[s.class_id] for s, _ in gzsl]  # seen classes + beta
    zsl = prediction.ranked(zsl=True)
    assert [s.class_id for s, _ in zsl] == [s.class_id for s in prediction.zsl]
    assert all(not s.seen and r == s.distance for s, r in zsl)  # ZSL ranks the distances themselves
