import numpy as np
import pytest

from kda.benchmark import load_benchmark
from kda.class_vectors import load_vectors
from kda.losses import loss_preset
from kda.settings import get_setting
from kda.train import TrainConfig, balanced_order, train


@pytest.fixture(scope="module")
def setup(ucf_synth):
    bench = load_benchmark(ucf_synth, "UCF", "cls")
    kv = load_vectors(ucf_synth / "knowledge_vectors.npz").bind(bench.classes, known=bench.all_classes)
    return bench, kv


def run(setup, **overrides):
    bench, kv = setup
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 64, **overrides})
    return train(bench, kv, get_setting("cls").model_config(), loss_preset("kda"), cfg, progress=False)


def test_two_stage_protocol_selects_on_validation(setup):
    result = run(setup)
    stage_1 = [e for e in result.log if e.stage == 1]
    stage_2 = [e for e in result.log if e.stage == 2]
    assert len(stage_1) == 3 and all(e.metrics for e in stage_1)
    hms = [e.metrics["hm"] for e in stage_1]
    assert result.best_epoch == hms.index(max(hms)) + 1 and len(stage_2) == result.best_epoch
    assert all(e.metrics is None for e in stage_2)  # test is evaluated once, after stage 2
    assert result.beta == result.validation.beta == result.test.beta
    assert [e.lr for e in stage_2] == [e.lr for e in stage_1[: result.best_epoch]]


def test_same_seed_same_result(setup):
    a, b = run(setup, epochs=2), run(setup, epochs=2)
    assert a.test == b.test
    assert [e.loss for e in a.log] == [e.loss for e in b.log]


def test_released_protocol_warns_and_selects_on_test(setup):
    with pytest.warns(UserWarning, match="TEST set"):
        result = run(setup, protocol="released", epochs=2)
    assert result.validation is None and all(e.stage == 2 for e in result.log)
    assert result.test.hm == max(e.metrics["hm"] for e in result.log)


def test_balanced_order_draws_every_class_about_equally():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    order = balanced_order(labels, np.random.default_rng(0))
    counts = np.bincount(labels[order], minlength=3)
    assert len(order) == len(labels) and counts.min() > 0.8 * counts.max()
