"""VGGish audio embeddings as the AVCA *cls* features were made: VGGish's own log-mel front end, the
network (parameter names of the torchvggish release), and the AudioSet PCA + 8-bit post-processing.

Every step follows docs/EXTRACTION.md ("Audio"); the quirks are commented where they happen.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from kda.errors import KdaError

SAMPLE_RATE = 16_000  # Hz, the rate VGGish was trained at
WINDOW_SAMPLES = 400  # 25 ms STFT window at 16 kHz
HOP_SAMPLES = 160  # 10 ms STFT hop at 16 kHz
FFT_LENGTH = 512  # 2 ** ceil(log2(400)): each 400-sample frame is zero-padded at its end
NUM_BINS = FFT_LENGTH // 2 + 1  # 257 rfft bins, 0 .. 8 kHz
MEL_BANDS = 64
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7500.0
MEL_BREAK_HZ = 700.0  # mel = 1127 ln(1 + f / 700)
MEL_HIGH_Q = 1127.0
LOG_OFFSET = 0.01  # log(mel + 0.01)
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames per example, no overlap
EXAMPLE_SAMPLES = WINDOW_SAMPLES + (EXAMPLE_FRAMES - 1) * HOP_SAMPLES  # 15,600 samples one example spans
EXAMPLE_HOP_SAMPLES = EXAMPLE_FRAMES * HOP_SAMPLES  # 15,360 samples between example starts
EMBEDDING_DIM = 128
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0  # PCA outputs are clipped to this range before 8-bit quantisation
QUANTIZE_LEVELS = 255.0


# ---------------------------------------------------------------------------------------------
# Front end: waveform -> log-mel examples


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return MEL_HIGH_Q * np.log(1.0 + np.asarray(hz, dtype=np.float64) / MEL_BREAK_HZ)


@lru_cache(maxsize=1)
def mel_matrix() -> np.ndarray:
    """(257, 64) VGGish mel weights. Unlike librosa, the triangles are built in the *mel* domain on
    the FFT bin centres, are not area-normalised, and the DC bin gets no weight."""
    bins_mel = hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, NUM_BINS))  # (257,)
    edges = np.linspace(hz_to_mel(MEL_LOW_HZ), hz_to_mel(MEL_HIGH_HZ), MEL_BANDS + 2)  # (66,)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # (64,) each
    rising = (bins_mel[:, None] - lower) / (centre - lower)  # (257, 64)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # VGGish zeroes the DC bin
    return weights


@lru_cache(maxsize=1)
def periodic_hann() -> np.ndarray:
    """(400,) periodic Hann (the DFT-even window VGGish uses, not numpy's symmetric `np.hanning`)."""
    n = np.arange(WINDOW_SAMPLES)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / WINDOW_SAMPLES)


def num_frames(num_samples: int) -> int:
    """STFT frames without padding: 1 + (N - 400) // 160, or 0 for less than one window."""
    return 0 if num_samples < WINDOW_SAMPLES else 1 + (num_samples - WINDOW_SAMPLES) // HOP_SAMPLES


def num_examples(num_samples: int) -> int:
    """Complete 96-frame examples in a waveform (the incomplete tail is dropped)."""
    return num_frames(num_samples) // EXAMPLE_FRAMES


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """(frames, 64) float64 log-mel spectrogram of a mono 16 kHz waveform, VGGish's front end."""
    waveform = np.asarray(waveform, dtype=np.float64)
    count = num_frames(len(waveform))
    if count == 0:
        return np.zeros((0, MEL_BANDS))
    frames = np.lib.stride_tricks.sliding_window_view(waveform, WINDOW_SAMPLES)[::HOP_SAMPLES][:count]  # (F, 400)
    magnitude = np.abs(np.fft.rfft(frames * periodic_hann(), n=FFT_LENGTH))  # (F, 257), magnitude not power
    return np.log(magnitude @ mel_matrix() + LOG_OFFSET)  # (F, 64)


def log_mel_examples(waveform: np.ndarray, indices: np.ndarray | None = None) -> np.ndarray:
    """(n, 96, 64) float32 examples; `indices` picks which complete examples to compute (all by default).

    Example k covers frames 96k .. 96k+95, i.e. samples [15360k, 15360k + 15600): computing it from that
    span alone gives the same numbers as framing the whole waveform, at a bounded cost per example.
    """
    if indices is None:
        indices = np.arange(num_examples(len(waveform)))
    out = np.empty((len(indices), EXAMPLE_FRAMES, MEL_BANDS), dtype=np.float32)
    for row, k in enumerate(indices):
        start = int(k) * EXAMPLE_HOP_SAMPLES
        out[row] = log_mel(waveform[start : start + EXAMPLE_SAMPLES])
    return out


# ---------------------------------------------------------------------------------------------
# Network


def conv_stack() -> nn.Sequential:
    """VGG stack; Sequential indices give the torchvggish names features.0/3/6/8/11/13."""
    layers: list[nn.Module] = []
    channels = 1
    for width in (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool"):
        if width == "pool":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """VGGish: (B, 1, 96, 64) log-mel examples -> (B, 128) embeddings (before PCA)."""

    def __init__(self):
        super().__init__()
        self.features = conv_stack()
        # Quirk: the benchmark's VGGish ends with a ReLU on the 128-d embedding too (Google's
        # TensorFlow VGGish leaves that layer linear); kept so features match the public ones.
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_DIM),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 512, 6, 4)
        # Flatten channels-last, as TensorFlow did: the fc weights were trained on NHWC order.
        x = x.permute(0, 2, 3, 1).reshape(len(x), -1)  # (B, 12288)
        return self.embeddings(x)  # (B, 128)


class PCAQuantizer(nn.Module):
    """AudioSet post-processing: PCA with whitening, clip to [-2, 2], 8-bit quantisation.

    Buffers are named as in the released parameter file (`pca_eigen_vectors`, `pca_means`).
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("pca_eigen_vectors", torch.eye(EMBEDDING_DIM))  # (128, 128)
        self.register_buffer("pca_means", torch.zeros(EMBEDDING_DIM))  # (128,)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(n, 128) raw embeddings -> (n, 128) float values in {0, ..., 255}."""
        centred = embeddings.double() - self.pca_means.double()  # (n, 128)
        pca = centred @ self.pca_eigen_vectors.double().T  # E @ (x - mu), for each row
        clipped = pca.clamp(QUANTIZE_MIN, QUANTIZE_MAX)
        scaled = (clipped - QUANTIZE_MIN) * (QUANTIZE_LEVELS / (QUANTIZE_MAX - QUANTIZE_MIN))
        # Quirk: the benchmark quantised with a uint8 *cast*, which truncates (torchvggish rounds).
        return torch.floor(scaled).float()

    def load_params(self, params: dict) -> None:
        matrix = torch.as_tensor(params["pca_eigen_vectors"], dtype=torch.float32)
        means = torch.as_tensor(params["pca_means"], dtype=torch.float32).reshape(-1)
        if matrix.shape != (EMBEDDING_DIM, EMBEDDING_DIM) or means.shape != (EMBEDDING_DIM,):
            raise KdaError(f"PCA parameters must be 128x128 and 128, got {tuple(matrix.shape)}, {tuple(means.shape)}")
        self.pca_eigen_vectors.copy_(matrix)
        self.pca_means.copy_(means)
