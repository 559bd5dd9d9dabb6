"""The backbone registry: name -> how to build the network with pretrained or offline weights. Which
backbones a feature setting uses is in `kda.settings`.

Weights: "pretrained" loads the public files (verified by SHA-256, `kda.media.weights`) or open_clip's
pretrained tag, and fails with a message naming the file when it cannot be had; "offline" builds the
same architectures with seeded random weights, whose features carry no meaning (flagged everywhere).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kda.errors import KdaError

WEIGHTS = ("pretrained", "offline")
OFFLINE_SEED = 0  # every offline backbone is drawn from this seed, so offline features are reproducible
# One build at a time: an offline build seeds the process-wide RNG (two at once would draw from each other's
# stream), and a pretrained one reads hundreds of MB.
BUILD_LOCK = threading.Lock()


class BackboneError(KdaError):
    """An unknown backbone or kind of weights."""


@dataclass
class Backbone:
    """A built network in eval mode, and where its weights came from."""

    name: str
    model: Any  # nn.Module, or a ClipImageEncoder
    offline: bool
    source: str  # human-readable provenance, shown in notes
    extra: Any = None  # the VGGish PCA post-processor


def check_weights(weights: str) -> str:
    if weights not in WEIGHTS:
        raise BackboneError(f"unknown weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    return weights


def seeded(build, seed: int = OFFLINE_SEED):
    """Call `build()` with the global RNG seeded (and restored afterwards), so random weights are reproducible."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def he_init(model):
    """He (Kaiming) normal weights and zero biases for every conv and linear layer, in place.

    PyTorch's default initialisation shrinks activations layer by layer, so a deep random VGGish or C3D
    answers almost the same vector for every input; He initialisation keeps their scale, so offline
    features at least differ between videos (they still carry no meaning).
    """
    from torch import nn

    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return model


def offline_source(name: str) -> str:
    return f"{name} with seeded random weights (seed {OFFLINE_SEED}): offline, features carry no meaning"


def load_vggish(weights: str) -> Backbone:
    from kda.media import weights as registry
    from kda.media.vggish import PCAQuantizer, VGGish

    pca = PCAQuantizer()
    if weights == "offline":
        model = seeded(lambda: he_init(VGGish())).eval()
        pca.load_params(seeded(lambda: offline_pca(model)))
        return Backbone("vggish", model, True, offline_source("VGGish"), pca.eval())
    model = VGGish()
    model.load_state_dict(registry.load_state_dict("vggish"))
    pca.load_params(registry.load_state_dict("vggish-pca"))
    source = (
        f"VGGish ({registry.REGISTRY['vggish'].filename}) + AudioSet PCA ({registry.REGISTRY['vggish-pca'].filename})"
    )
    return Backbone("vggish", model.eval(), False, source, pca.eval())


def offline_pca(model) -> dict:
    """Stand-in PCA parameters for a random VGGish: a random rotation, centred and scaled on the network's
    answers to noise at several levels, so that quantised offline features spread over 0..255."""
    import torch

    from kda.media.vggish import EMBEDDING_DIM, EXAMPLE_FRAMES, LOG_OFFSET, MEL_BANDS

    levels = torch.linspace(0.0, 1.0, 8)[:, None, None, None]  # (8, 1, 1, 1)
    noise = torch.rand(8, 1, EXAMPLE_FRAMES, MEL_BANDS) * levels  # (8, 1, 96, 64) magnitudes
    with torch.inference_mode():
        embeddings = model(torch.log(noise + LOG_OFFSET))  # (8, 128)
    rotation = torch.linalg.qr(torch.randn(EMBEDDING_DIM, EMBEDDING_DIM))[0]
    scale = 0.5 / embeddings.std().clamp_min(1e-6)  # typical components at +-0.5 of the +-2 range
    return {"pca_eigen_vectors": rotation * scale, "pca_means": embeddings.mean(dim=0)}


def load_c3d(weights: str) -> Backbone:
    from kda.media import weights as registry
    from kda.media.c3d import C3D

    if weights == "offline":
        return Backbone("c3d", seeded(lambda: he_init(C3D())).eval(), True, offline_source("C3D"))
    model = C3D()
    model.load_state_dict(registry.load_state_dict("c3d-sports1m"))
    return Backbone("c3d", model.eval(), False, f"C3D Sports-1M ({registry.REGISTRY['c3d-sports1m'].filename})")


def load_clip_vit_b_32(weights: str) -> Backbone:
    from kda.media.clip_frames import ARCH, PRETRAINED_TAG, build_clip_image_encoder
    from kda.media.weights import WeightsUnavailableError

    if weights == "offline":
        encoder = seeded(lambda: build_clip_image_encoder(None))
        return Backbone("clip-vit-b-32", encoder, True, offline_source(f"CLIP {ARCH}"))
    try:
        encoder = build_clip_image_encoder(PRETRAINED_TAG)
    except Exception as e:  # open_clip raises many kinds (network, hub, file) for weights it cannot get
        raise WeightsUnavailableError(
            f"cannot load open_clip {ARCH} weights {PRETRAINED_TAG!r} ({type(e).__name__}: {e}); they download "
            "from the Hugging Face Hub on first use: run once with network access (the Hub cache keeps them), "
            "or use the offline weights"
        ) from e
    return Backbone("clip-vit-b-32", encoder, False, f"CLIP {ARCH} ({PRETRAINED_TAG})")


BACKBONES = {"vggish": load_vggish, "c3d": load_c3d, "clip-vit-b-32": load_clip_vit_b_32}


@lru_cache(maxsize=8)
def load_backbone(name: str, weights: str) -> Backbone:
    """The named backbone, built once per process and weights kind (callers share it: never change it)."""
    check_weights(weights)
    if name not in BACKBONES:
        raise BackboneError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    with BUILD_LOCK:
        return BACKBONES[name](weights)
