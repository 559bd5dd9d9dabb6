"""The KDA audio-visual network: encoders, two-token cross-attention, projectors, embedding layer.

Architecture only; training, evaluation and extraction are functions that take a `KDAModel`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from kda.errors import KdaError


@dataclass
class ModelConfig:
    audio_dim: int = 128  # Da: VGGish (cls) 128, SeLaVi (main) 512
    visual_dim: int = 4096  # Dv: C3D fc7 (cls) 4096, SeLaVi (main) 512
    audio_hidden: int = 512  # first layer of the audio encoder
    visual_hidden: int = 1024  # first layer of the visual encoder
    width: int = 512  # phi / theta width
    embed_dim: int = 512  # knowledge space (CLIP text embedding width)
    heads: int = 3  # cross-attention heads
    head_dim: int = 100  # per-head width; attention inner width = heads * head_dim
    ff_hidden: int = 64  # feed-forward bottleneck of the attention block
    attn_dropout: float = 0.1
    mlp_dropout: float = 0.0  # encoders and projectors (the released runs use 0)
    normalize_output: bool = True  # L2-normalise rho_av (the released code never does)
    # The fields below reproduce the released code's forward (kda.presets 'released'); the defaults are the
    # paper's network. Checkpoints written before they existed load with the defaults, i.e. unchanged.
    input_norm: bool = True  # standardise inputs with training-set statistics (released: raw features)
    normalize_concat: bool = False  # L2-normalise [theta_v; theta_a] before W (released, cls setting only)
    double_skip: bool = False  # phi_att = phi + block(phi + p): the skip added twice, as released
    attention_weight_dropout: bool = True  # dropout on the attention weights too (released: output only)
    init: str = "paper"  # "released": p ~ N(0, 1) and W ~ U(0, 1) * 2e-4, as the released code starts

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise KdaError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        return cls(**data)


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """Linear BN ReLU Dropout, twice: the pattern of every encoder and projector."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, out_dim),
        nn.BatchNorm1d(out_dim),
        nn.ReLU(),
        nn.Dropout(dropout),
    )


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, head_dim: int, dropout: float, weight_dropout: bool = True):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(width, 3 * heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, width)
        self.dropout = dropout
        self.weight_dropout = weight_dropout  # False: dropout after the output projection only (released)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, hd)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p if self.weight_dropout else 0.0)  # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.heads * self.head_dim)
        return F.dropout(self.out(y), p, self.training)


class CrossAttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block over the two tokens [audio, visual]: each modality attends to
    the other (and itself)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width)
        self.attn = SelfAttention(cfg.width, cfg.heads, cfg.head_dim, cfg.attn_dropout, cfg.attention_weight_dropout)
        self.norm2 = nn.LayerNorm(cfg.width)
        self.ff = nn.Sequential(
            nn.Linear(cfg.width, cfg.ff_hidden),
            nn.GELU(),
            nn.Dropout(cfg.attn_dropout),
            nn.Linear(cfg.ff_hidden, cfg.width),
            nn.Dropout(cfg.attn_dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2, W) -> (B, 2, W)
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


class InputNorm(nn.Module):
    """Per-dimension standardisation with training-set statistics, saved with the model. The cls
    features live on very different scales (audio 0..255, visual activations in the thousands of
    dims); standardising them keeps the first layers' optimisation well conditioned. With `standardise`
    off (the released preset) the inputs pass raw, but the statistics are still kept: the training mean
    stands in for a missing modality (no audio track, the modality-contribution view)."""

    def __init__(self, dim: int, standardise: bool = True):
        super().__init__()
        self.standardise = standardise
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: torch.Tensor) -> None:  # (N, D)
        std = x.std(dim=0) if len(x) > 1 else torch.ones(x.shape[1])
        # Near-constant dims (dead ReLUs) would be blown up by a tiny std; floor it at a tenth of the typical one.
        self.mean.copy_(x.mean(dim=0))
        self.std.copy_(std.clamp_min(0.1 * std.mean().clamp_min(1e-6)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std if self.standardise else x


class KDAModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.audio_norm = InputNorm(cfg.audio_dim, cfg.input_norm)
        self.visual_norm = InputNorm(cfg.visual_dim, cfg.input_norm)
        self.audio_encoder = mlp(cfg.audio_dim, cfg.audio_hidden, cfg.width, cfg.mlp_dropout)
        self.visual_encoder = mlp(cfg.visual_dim, cfg.visual_hidden, cfg.width, cfg.mlp_dropout)
        self.position = nn.Parameter(torch.randn(2, cfg.width) * 0.02)  # p_a, p_v
        self.cross_attention = CrossAttentionBlock(cfg)
        self.audio_projector = mlp(cfg.width, cfg.width, cfg.width, cfg.mlp_dropout)
        self.visual_projector = mlp(cfg.width, cfg.width, cfg.width, cfg.mlp_dropout)
        self.embedding = nn.Linear(2 * cfg.width, cfg.embed_dim, bias=False)  # W in rho = W [theta_v; theta_a]
        if cfg.init == "released":
            self.init_released()
        elif cfg.init != "paper":
            raise KdaError(f"unknown model init {cfg.init!r}; choose paper or released")

    @torch.no_grad()
    def init_released(self) -> None:
        """The released code's starting point: standard-normal position vectors, W uniform in [0, 2e-4)."""
        self.position.normal_()
        self.embedding.weight.uniform_(0.0, 1.0).mul_(2e-4)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """(B, Da), (B, Dv) -> rho_av (B, E)."""
        return self.embed(audio, visual)["rho_av"]

    def embed(self, audio: torch.Tensor, visual: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate embedding the analysis views need, by name."""
        phi_a = self.audio_encoder(self.audio_norm(audio))  # (B, W)
        phi_v = self.visual_encoder(self.visual_norm(visual))  # (B, W)
        phi = torch.stack([phi_a, phi_v], dim=1)  # (B, 2, W)
        phi_att = self.cross_attention(phi + self.position)  # (B, 2, W)
        if self.cfg.double_skip:  # released: the block's own residual plus this one, 2 phi + p + Attn + FF
            phi_att = phi + phi_att
        theta_a = self.audio_projector(phi_att[:, 0])
        theta_v = self.visual_projector(phi_att[:, 1])
        concat = torch.cat([theta_v, theta_a], dim=1)  # (B, 2W)
        if self.cfg.normalize_concat:
            concat = F.normalize(concat, dim=1)
        rho = self.embedding(concat)  # (B, E)
        if self.cfg.normalize_output:
            rho = F.normalize(rho, dim=1)
        return {"phi_a": phi[:, 0], "phi_v": phi[:, 1], "theta_a": theta_a, "theta_v": theta_v, "rho_av": rho}

    @torch.no_grad()
    def fit_input_norm(self, audio, visual) -> None:
        """Keep the training features' statistics (N, Da), (N, Dv): they standardise the inputs (unless
        `input_norm` is off) and their means stand in for a missing modality."""
        self.audio_norm.fit(torch.as_tensor(audio, dtype=torch.float32))
        self.visual_norm.fit(torch.as_tensor(visual, dtype=torch.float32))

    def num_parameters(self) -> int:
        """Trainable parameters (the input statistics are buffers, not counted)."""
        return sum(p.numel() for p in self.parameters())


class DimensionMismatchError(KdaError):
    pass


def check_dims(cfg: ModelConfig, audio_dim: int, visual_dim: int, source: str) -> None:
    if (cfg.audio_dim, cfg.visual_dim) != (audio_dim, visual_dim):
        raise DimensionMismatchError(
            f"{source} has audio/visual features of {audio_dim}/{visual_dim} dims but the model expects "
            f"{cfg.audio_dim}/{cfg.visual_dim}; use the matching feature `setting`"
        )
