"""The losses at the settings training really uses (LossConfig's defaults: tau 0.1, alpha 1, m0 0.5, both weights
1; the released preset: alignment alone at weight 5), against values worked out by hand. At tau = 1 dividing and
multiplying by tau agree, so only the default temperature tells them apart."""

import math

import numpy as np
import pytest
import torch

from kda.losses import LossConfig, adaptive_margin_loss, adaptive_margins, alignment_loss, kda_loss, loss_preset

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
