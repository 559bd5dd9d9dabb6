"""CLIP frame features: frames sampled evenly in time -> open_clip image embeddings -> their mean.

The image tower is CLIP ViT-B/32 with OpenAI's weights, the model family of kda's default text encoder
(`ViT-B-32-quickgelu@openai`: those weights were trained with QuickGELU). Offline, the same
architecture is built with seeded random weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from kda.quiet import quiet_root_logger

ARCH = "ViT-B-32-quickgelu"
PRETRAINED_TAG = "openai"
EMBED_DIM = 512
BATCH_FRAMES = 16  # frames per forward pass (bounds memory)


@dataclass
class ClipImageEncoder:
    visual: nn.Module  # open_clip's image tower: (B, 3, 224, 224) -> (B, 512)
    preprocess: Callable[[Image.Image], torch.Tensor]  # open_clip's eval transform (resize, crop, normalise)


def build_clip_image_encoder(pretrained: str | None) -> ClipImageEncoder:
    """ViT-B/32 image tower; `pretrained` is an open_clip tag, or None for the (seeded by the caller)
    random initialisation. The text tower is dropped: only images are encoded here."""
    import open_clip

    with quiet_root_logger():
        model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=pretrained)
    return ClipImageEncoder(model.visual.eval(), preprocess)


def embed_frames(encoder: ClipImageEncoder, frames: np.ndarray, device="cpu") -> np.ndarray:
    """(n, H, W, 3) uint8 RGB frames -> (n, 512) float32 image embeddings, each L2-normalised
    (CLIP compares directions; the video feature is the mean of these, not re-normalised)."""
    out = []
    for start in range(0, len(frames), BATCH_FRAMES):
        batch = torch.stack([encoder.preprocess(Image.fromarray(f)) for f in frames[start : start + BATCH_FRAMES]])
        with torch.inference_mode():
            emb = encoder.visual(batch.to(device))  # (b, 512)
        out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
    return np.concatenate(out)
