"""KDA's losses: knowledge alignment and the knowledge-aware adaptive margin loss, and named presets.

The margins come from frozen knowledge embeddings (no gradient), so the optimiser cannot shrink them
to make the loss easier.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from kda.errors import KdaError


@dataclass(frozen=True)
class LossConfig:
    align_weight: float = 1.0  # lambda_align
    margin_weight: float = 1.0  # lambda_kaml
    alpha: float = 1.0  # margin slope on knowledge cosine similarity
    m0: float = 0.5  # margin floor, in logit units
    tau: float = 0.1  # logits z = -d / tau

    def to_dict(self) -> dict:
        return asdict(self)


LOSS_PRESETS = {
    # The method: alignment plus the adaptive margin loss.
    "kda": LossConfig(),
    # The authors' released training: alignment alone, weight 5 (their margin term is commented out).
    "released": LossConfig(align_weight=5.0, margin_weight=0.0),
}


def loss_preset(name: str) -> LossConfig:
    if name not in LOSS_PRESETS:
        raise KdaError(f"unknown loss preset {name!r}; choose one of {', '.join(LOSS_PRESETS)}")
    return LOSS_PRESETS[name]


def alignment_loss(rho: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean_i ||rho_i - t_{y_i}||^2. (B, E), (B, E) -> scalar."""
    return (rho - targets).pow(2).sum(dim=1).mean()


def adaptive_margins(class_matrix: torch.Tensor, alpha: float, m0: float) -> torch.Tensor:
    """m(y, c) = alpha * cos(t_y, t_c) + m0, with m(y, y) = 0. (C, E) -> (C, C), constant."""
    t = F.normalize(class_matrix.detach(), dim=1)
    margins = alpha * (t @ t.T) + m0
    return margins.fill_diagonal_(0.0)


def adaptive_margin_loss(
    rho: torch.Tensor, labels: torch.Tensor, class_matrix: torch.Tensor, margins: torch.Tensor, tau: float
) -> torch.Tensor:
    """CE(z_i + m(y_i, .), y_i) with z_ic = -d(i, c) / tau: the margin raises every non-target logit
    before the softmax, so the target must win by more against classes with similar knowledge.

    rho (B, E), labels (B,) indexing class_matrix (C, E), margins (C, C) -> scalar.
    """
    logits = -torch.cdist(rho, class_matrix) / tau  # (B, C)
    return F.cross_entropy(logits + margins[labels], labels)


def kda_loss(
    rho: torch.Tensor, labels: torch.Tensor, class_matrix: torch.Tensor, margins: torch.Tensor, cfg: LossConfig
) -> dict[str, torch.Tensor]:
    """The weighted total and its parts. labels index the rows of class_matrix (the training classes)."""
    parts = {"align": alignment_loss(rho, class_matrix[labels])}
    total = cfg.align_weight * parts["align"]
    if cfg.margin_weight:
        parts["margin"] = adaptive_margin_loss(rho, labels, class_matrix, margins, cfg.tau)
        total = total + cfg.margin_weight * parts["margin"]
    parts["total"] = total
    return parts
