import math

import pytest
import torch

from kda.errors import KdaError
from kda.losses import LOSS_PRESETS, adaptive_margin_loss, adaptive_margins, alignment_loss, kda_loss, loss_preset


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
