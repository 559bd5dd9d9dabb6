"""Feature settings: the one registry of what a model's inputs are (audio and visual dims) and which
backbones make them from a video.

    cls    VGGish 128 + C3D fc7 4096   the AVCA 'cls' features; kda reproduces their extraction
    main   SeLaVi 512 + 512            the AVCA 'main' features; no extractor ships with kda
    clip   VGGish 128 + CLIP 512       VGGish as in cls + CLIP ViT-B/32 frame embeddings

A checkpoint names its setting; `get_setting(name).model_config()` rebuilds the network's inputs and
`kda.media.extract_video(path, setting)` makes matching features from a video.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kda.errors import KdaError

if TYPE_CHECKING:
    from kda.model import ModelConfig


class SettingError(KdaError):
    """An unknown feature setting, or one without an extractor."""


@dataclass(frozen=True)
class FeatureSetting:
    name: str
    audio_dim: int
    visual_dim: int
    about: str
    audio_backbone: str | None = None  # names in kda.media.backbones; None: kda cannot extract this setting
    visual_backbone: str | None = None
    no_extractor: str = ""  # why there is no extractor, and what to do instead

    @property
    def dims(self) -> tuple[int, int]:
        return self.audio_dim, self.visual_dim

    @property
    def has_extractor(self) -> bool:
        return self.audio_backbone is not None and self.visual_backbone is not None

    def model_config(self, **overrides) -> ModelConfig:
        """The network for this setting's inputs; `overrides` set other ModelConfig fields (e.g. embed_dim)."""
        from kda.model import ModelConfig

        return ModelConfig(audio_dim=self.audio_dim, visual_dim=self.visual_dim, **overrides)

    def require_extractor(self) -> FeatureSetting:
        if not self.has_extractor:
            raise SettingError(f"feature setting {self.name!r} has no extractor: {self.no_extractor}")
        return self


SETTINGS = {
    s.name: s
    for s in (
        FeatureSetting(
            "cls",
            128,
            4096,
            "the AVCA 'cls' features, extraction reproduced: VGGish (AudioSet PCA, 8-bit) over 0.96 s examples "
            "+ C3D Sports-1M fc7 over 16-frame clips, each averaged over the video",
            audio_backbone="vggish",
            visual_backbone="c3d",
        ),
        FeatureSetting(
            "main",
            512,
            512,
            "the AVCA 'main' features (SeLaVi audio and visual embeddings)",
            no_extractor="the AVCA 'main' features come from SeLaVi, whose extractor kda does not ship; train on the "
            "public 'main' features for benchmarks, and use a 'cls' or 'clip' checkpoint to classify your own videos",
        ),
        FeatureSetting(
            "clip",
            128,
            512,
            "VGGish as in 'cls' + CLIP ViT-B/32 (OpenAI) image embeddings of frames sampled evenly in time, "
            "averaged: the image tower of the default text encoder's model",
            audio_backbone="vggish",
            visual_backbone="clip-vit-b-32",
        ),
    )
}


def list_settings(extractable: bool = False) -> list[str]:
    """Names of every feature setting (only those kda can extract from a video, with `extractable`)."""
    return [name for name, s in SETTINGS.items() if s.has_extractor or not extractable]


def get_setting(name: str) -> FeatureSetting:
    if name not in SETTINGS:
        raise SettingError(f"unknown feature setting {name!r}; choose one of {', '.join(SETTINGS)}")
    return SETTINGS[name]
