import math

import numpy as np
import pytest
import torch

from kda.errors import KdaError
from kda.losses import (
    LOSS_PRESETS,
    LossConfig,
    adaptive_margin_loss,
    adaptive_margins,
    alignment_loss,
    kda_loss,
    loss_preset,
)


def test_alignment_loss_hand_computed():
    rho = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    assert alignment_loss(rho, t).item() == pytest.approx((1 + 4) / 2)


def test_margins_follow_knowledge_similarity():
    t = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    m = adaptive_margins(t, alpha=2.0, m0=0.5)
    cos01 = 1 / math.sqrt(2)
    assert m[0, 1].item() == pytest.approx(2 * cos01 + 0.5)
    assert m[0, 2].item() == pytest.approx(-2 + 0.5)  # opposite knowledge: smallest margin
    assert torch.all(torch.diag(m) == 0)
    assert m[0, 1] > m[0, 2]  # more similar classes must be separated by more
    assert not m.requires_grad


def test_margins_cannot_be_learnt_away():
    t = torch.randn(4, 3, requires_grad=True)
    m = adaptive_margins(t, 1.0, 0.2)
    assert not m.requires_grad  # the optimiser has no handle on the margins


def test_adaptive_margin_loss_hand_computed():
    # One video at the origin, two classes at distances 1 and 2; tau = 1; margin 0.5 on class 1.
    rho = torch.zeros(1, 2)
    t = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    margins = torch.tensor([[0.0, 0.5], [0.5, 0.0]])
    loss = adaptive_margin_loss(rho, torch.tensor([0]), t, margins, tau=1.0)
    z0, z1 = -1.0, -2.0 + 0.5  # margin added to the non-target logit before the softmax
    assert loss.item() == pytest.approx(-z0 + math.log(math.exp(z0) + math.exp(z1)))


def test_margin_raises_the_loss_and_more_for_similar_classes():
    rho = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    label = torch.tensor([0])
    no_margin = adaptive_margin_loss(rho, label, t, torch.zeros(2, 2), 1.0)
    small = adaptive_margin_loss(rho, label, t, torch.tensor([[0.0, 0.1], [0.1, 0.0]]), 1.0)
    large = adaptive_margin_loss(rho, label, t, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 1.0)
    # Both classes at distance 1, tau 1: z = (-1, -1 + m), so CE = 1 + log(e^-1 + e^(m - 1)) = log(1 + e^m).
    assert no_margin.item() == pytest.approx(math.log(2))
    assert small.item() == pytest.approx(math.log(1 + math.exp(0.1)))
    assert large.item() == pytest.approx(math.log(1 + math.e))


def test_presets():
    assert loss_preset("released").margin_weight == 0 and loss_preset("released").align_weight == 5
    assert LOSS_PRESETS["kda"].margin_weight == 1.0 and LOSS_PRESETS["kda"].align_weight == 1.0
    with pytest.raises(KdaError, match="unknown loss preset 'nope'; choose one of kda, released"):
        loss_preset("nope")
    torch.manual_seed(0)
    rho, t = torch.randn(3, 4), torch.randn(2, 4)
    labels = torch.tensor([0, 1, 1])
    m = adaptive_margins(t, 1.0, 0.5)
    released = kda_loss(rho, labels, t, m, loss_preset("released"))
    assert "margin" not in released
    assert released["total"].item() == pytest.approx(5 * alignment_loss(rho, t[labels]).item())
    full = kda_loss(rho, labels, t, m, loss_preset("kda"))
    # Each part is its loss computed directly, at the method's temperature 0.1; both weights are 1.
    align = alignment_loss(rho, t[labels]).item()
    margin = adaptive_margin_loss(rho, labels, t, m, tau=0.1).item()
    assert set(full) == {"align", "margin", "total"}
    assert (full["align"].item(), full["margin"].item()) == (pytest.approx(align), pytest.approx(margin))
    assert full["total"].item() == pytest.approx(align + margin)


# Two videos on the unit circle, three unit knowledge vectors; labels 0 and 2.
RHO = [(0.8, 0.6), (0.0, 1.0)]


KNOWLEDGE = [(1.0, 0.0), (0.6, 0.8), (-0.8, 0.6)]


LABELS = [0, 2]


# cos(t_y, t_c): cos(t0, t1) = 0.6, cos(t0, t2) = -0.8, cos(t1, t2) = 0; so m(y, c) = cos + 0.5 off the diagonal.
MARGINS = [[0.0, 1.1, -0.3], [1.1, 0.0, 0.5], [-0.3, 0.5, 0.0]]


# d(i, c): video 0 -> sqrt(0.4), sqrt(0.08), sqrt(2.56); video 1 -> sqrt(2), sqrt(0.4), sqrt(0.8).
# z_ic = -d(i, c) / 0.1 + m(y_i, c); CE_i = -z_iy + log sum_c exp z_ic:
#   video 0: z = (-6.3246, -1.7284, -16.3), CE = 4.6062; video 1: z = (-14.4421, -5.8246, -8.9443), CE = 3.1631.
MARGIN_LOSS = 3.8846403736657686  # mean of the two CEs, computed by `hand_margin_loss` below in plain floats


ALIGN_LOSS = 0.6  # (||rho_0 - t_0||^2 + ||rho_1 - t_2||^2) / 2 = (0.4 + 0.8) / 2


def tensors():
    return torch.tensor(RHO), torch.tensor(LABELS), torch.tensor(KNOWLEDGE)


def hand_margin_loss(tau: float, alpha: float, m0: float) -> float:
    """The adaptive-margin loss in plain Python: margins on the non-target logits, then the softmax."""
    losses = []
    for r, y in zip(RHO, LABELS, strict=True):
        z = []
        for c, t in enumerate(KNOWLEDGE):
            cos = sum(a * b for a, b in zip(KNOWLEDGE[y], t, strict=True))  # unit vectors
            margin = 0.0 if c == y else alpha * cos + m0
            z.append(-math.dist(r, t) / tau + margin)
        losses.append(-z[y] + math.log(sum(math.exp(v) for v in z)))
    return sum(losses) / len(losses)


def test_defaults_are_the_ones_the_hand_values_assume():
    cfg = LossConfig()
    assert (cfg.tau, cfg.alpha, cfg.m0, cfg.align_weight, cfg.margin_weight) == (0.1, 1.0, 0.5, 1.0, 1.0)
    assert hand_margin_loss(cfg.tau, cfg.alpha, cfg.m0) == pytest.approx(MARGIN_LOSS, abs=1e-12)


def test_margins_at_the_default_slope_and_floor():
    _, _, knowledge = tensors()
    cfg = LossConfig()
    margins = adaptive_margins(knowledge, cfg.alpha, cfg.m0)
    np.testing.assert_allclose(margins.numpy(), MARGINS, atol=1e-6)


def test_adaptive_margin_loss_at_the_default_temperature():
    rho, labels, knowledge = tensors()
    cfg = LossConfig()
    margins = adaptive_margins(knowledge, cfg.alpha, cfg.m0)
    loss = adaptive_margin_loss(rho, labels, knowledge, margins, cfg.tau)
    assert loss.item() == pytest.approx(MARGIN_LOSS, rel=1e-6)
    # the same call at tau = 1 gives another value: the temperature divides the distances
    assert adaptive_margin_loss(rho, labels, knowledge, margins, 1.0).item() == pytest.approx(
        hand_margin_loss(1.0, cfg.alpha, cfg.m0), rel=1e-6
    )
    assert hand_margin_loss(1.0, cfg.alpha, cfg.m0) == pytest.approx(1.4943700004168166, abs=1e-12)


def test_total_loss_at_the_default_weights():
    rho, labels, knowledge = tensors()
    cfg = LossConfig()
    parts = kda_loss(rho, labels, knowledge, adaptive_margins(knowledge, cfg.alpha, cfg.m0), cfg)
    assert parts["align"].item() == pytest.approx(ALIGN_LOSS, rel=1e-6)
    assert parts["margin"].item() == pytest.approx(MARGIN_LOSS, rel=1e-6)
    assert parts["total"].item() == pytest.approx(ALIGN_LOSS + MARGIN_LOSS, rel=1e-6)
    assert alignment_loss(rho, knowledge[labels]).item() == pytest.approx(ALIGN_LOSS, rel=1e-6)


def test_released_preset_is_alignment_alone_at_weight_five():
    rho, labels, knowledge = tensors()
    cfg = loss_preset("released")
    parts = kda_loss(rho, labels, knowledge, adaptive_margins(knowledge, cfg.alpha, cfg.m0), cfg)
    assert set(parts) == {"align", "total"}
    assert parts["total"].item() == pytest.approx(5 * ALIGN_LOSS, rel=1e-6)


def test_weights_scale_their_own_term():
    rho, labels, knowledge = tensors()
    cfg = LossConfig(align_weight=2.0, margin_weight=3.0)
    parts = kda_loss(rho, labels, knowledge, adaptive_margins(knowledge, cfg.alpha, cfg.m0), cfg)
    assert parts["total"].item() == pytest.approx(2 * ALIGN_LOSS + 3 * MARGIN_LOSS, rel=1e-6)


def test_the_logged_epoch_loss_is_the_mean_of_its_batch_losses(tmp_path):
    """At lr 0 the weights never move, so every batch's loss can be recomputed from the initial model (train
    mode: BatchNorm on batch statistics; no dropout) on the batches the epoch drew."""
    from kda.benchmark import load_benchmark
    from kda.knowledge.class_matrix import load_class_matrix
    from kda.settings import get_setting
    from kda.synth import KNOWLEDGE_FILE, SynthConfig, write_synthetic_benchmark
    from kda.train import TrainConfig, epoch_order, new_model, run_stage, training_tensors

    write_synthetic_benchmark(tmp_path, "UCF", "main", SynthConfig(train_videos=2, eval_videos=1, embed_dim=8))
    bench = load_benchmark(tmp_path, "UCF", "main")
    vectors = load_class_matrix(tmp_path / KNOWLEDGE_FILE).bind(bench.classes, known=bench.all_classes).vectors
    model_cfg = get_setting("main").model_config(
        embed_dim=8, audio_hidden=8, visual_hidden=8, width=8, heads=1, head_dim=4, ff_hidden=4, attn_dropout=0.0
    )
    cfg, loss = TrainConfig(epochs=1, batch_size=25, lr=0.0, seed=3), LossConfig()
    stage = bench.stage(1)
    _, log, _ = run_stage(stage, vectors, model_cfg, loss, cfg, 1, 1, evaluate_each_epoch=False, progress=False)

    model, rng = new_model(model_cfg, stage.train, cfg.seed)
    data = training_tensors(stage.train, vectors, stage.seen)
    margins = adaptive_margins(data.class_matrix, loss.alpha, loss.m0)
    order = epoch_order(data.labels.numpy(), cfg, rng)  # 60 videos: batches of 25, 25 and 10
    model.train()
    with torch.no_grad():
        parts = [
            kda_loss(model(data.audio[idx], data.visual[idx]), data.labels[idx], data.class_matrix, margins, loss)
            for idx in (torch.from_numpy(order[i : i + 25]) for i in range(0, len(order), 25))
        ]
    assert len(parts) == 3
    assert log[0].loss == pytest.approx(sum(p["total"].item() for p in parts) / 3, rel=1e-5)
    assert log[0].align == pytest.approx(sum(p["align"].item() for p in parts) / 3, rel=1e-5)
    assert log[0].margin == pytest.approx(sum(p["margin"].item() for p in parts) / 3, rel=1e-5)
