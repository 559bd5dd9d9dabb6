"""C3D (Tran et al., ICCV 2015) fc7 features as the AVCA *cls* features were made.

The frame preprocessing reproduces the benchmark's torchvision pipeline on OpenCV frames, quirks
included (docs/EXTRACTION.md, "Visual"); the network's parameter names are those of the
public Sports-1M PyTorch file (`conv1.weight` ... `fc8.bias`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import nn

CLIP_FRAMES = 16  # frames per C3D clip; clips are consecutive and non-overlapping
# The benchmark converted every video to 25 fps before reading all its frames: frame k of the converted file
# is the frame shown at t = k / 25 s (a constant-rate re-encode repeats or drops native frames to get there).
BENCHMARK_FPS = 25
TIME_SLACK_S = 1e-6  # container timestamps are rounded: a frame starting within 1 us of t counts as shown at t
RESIZE_HEIGHT, RESIZE_WIDTH = 128, 171  # Resize((128, 171)): aspect ratio not kept
CROP = 112  # CenterCrop(112)
CROP_TOP = round((RESIZE_HEIGHT - CROP) / 2)  # 8
CROP_LEFT = round((RESIZE_WIDTH - CROP) / 2)  # 29.5 -> 30, as torchvision rounds it
# Normalize() statistics as the benchmark passed them (RGB order, Kinetics) - applied to BGR frames.
MEAN = np.array([0.43216, 0.394666, 0.37645], dtype=np.float32)
STD = np.array([0.22803, 0.22145, 0.216989], dtype=np.float32)
FC7_DIM = 4096
SPORTS1M_CLASSES = 487  # fc8, unused but present in the weight file


class C3D(nn.Module):
    """(B, 3, 16, 112, 112) clips -> (B, 4096) fc7 activations after ReLU (eval mode: no dropout)."""

    def __init__(self):
        super().__init__()
        widths = {"1": 64, "2": 128, "3a": 256, "3b": 256, "4a": 512, "4b": 512, "5a": 512, "5b": 512}
        channels = 3
        for name, width in widths.items():
            setattr(self, f"conv{name}", nn.Conv3d(channels, width, kernel_size=3, padding=1))
            channels = width
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))  # keep time at 16
        self.pool2 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.pool3 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.pool4 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.pool5 = nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))  # 7x7 -> 4x4
        self.fc6 = nn.Linear(512 * 1 * 4 * 4, 4096)
        self.fc7 = nn.Linear(4096, FC7_DIM)
        self.fc8 = nn.Linear(4096, SPORTS1M_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(torch.relu(self.conv1(x)))  # (B, 64, 16, 56, 56)
        h = self.pool2(torch.relu(self.conv2(h)))  # (B, 128, 8, 28, 28)
        h = self.pool3(torch.relu(self.conv3b(torch.relu(self.conv3a(h)))))  # (B, 256, 4, 14, 14)
        h = self.pool4(torch.relu(self.conv4b(torch.relu(self.conv4a(h)))))  # (B, 512, 2, 7, 7)
        h = self.pool5(torch.relu(self.conv5b(torch.relu(self.conv5a(h)))))  # (B, 512, 1, 4, 4)
        h = torch.relu(self.fc6(h.flatten(1)))  # (B, 4096)
        return torch.relu(self.fc7(h))  # (B, 4096): the benchmark's output, fc8 is never used


def preprocess_frame(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame -> (3, 112, 112) float32, as the benchmark's pipeline produced it."""
    # The benchmark read frames with OpenCV: BGR order.
    bgr = rgb[..., ::-1]
    # Quirk: it stored uint8 values 0..255 in a float tensor and called ToPILImage, which multiplies
    # by 255 and casts to uint8; the cast wraps, so p becomes (256 - p) mod 256: an inverted image.
    inverted = ((256 - bgr.astype(np.int16)) % 256).astype(np.uint8)
    # Resize((128, 171)) on a PIL image: PIL bilinear to exactly 171x128, aspect ratio not kept.
    image = Image.fromarray(np.ascontiguousarray(inverted), mode="RGB")
    resized = np.asarray(image.resize((RESIZE_WIDTH, RESIZE_HEIGHT), Image.BILINEAR))  # (128, 171, 3)
    crop = resized[CROP_TOP : CROP_TOP + CROP, CROP_LEFT : CROP_LEFT + CROP]  # (112, 112, 3)
    # ToTensor + Normalize; the RGB statistics land on the B, G, R channels in that order.
    scaled = crop.astype(np.float32) / np.float32(255.0)
    return ((scaled - MEAN) / STD).transpose(2, 0, 1)  # (3, 112, 112)


def benchmark_frames(starts: np.ndarray, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The frames a 25 fps re-encode would keep: for t_k = start + k / 25 (k < round(25 * duration)), the
    native frame shown at t_k, i.e. the last one starting at or before it.

    starts (N,) ascending native frame start times in seconds -> indices (K,) into them, times (K,) seconds.
    """
    starts = np.asarray(starts, dtype=np.float64)
    count = max(1, round(duration_s * BENCHMARK_FPS))
    times = starts[0] + np.arange(count) / BENCHMARK_FPS  # (K,)
    indices = np.searchsorted(starts, times + TIME_SLACK_S, side="right") - 1
    return np.clip(indices, 0, len(starts) - 1), times


def clip_count(num_frames: int) -> int:
    """Consecutive 16-frame windows from frame 0; a shorter last window still counts (it is padded)."""
    return math.ceil(num_frames / CLIP_FRAMES)


def clip_frame_indices(num_frames: int, clip: int) -> np.ndarray:
    """Frame indices of clip `clip` (up to 16; fewer for the last one)."""
    start = clip * CLIP_FRAMES
    return np.arange(start, min(start + CLIP_FRAMES, num_frames))


def clip_tensor(frames: np.ndarray) -> torch.Tensor:
    """(n <= 16, H, W, 3) uint8 frames -> (3, 16, 112, 112); missing frames are zeros *after*
    normalisation, as the benchmark padded its last window."""
    clip = np.zeros((CLIP_FRAMES, 3, CROP, CROP), dtype=np.float32)  # (16, 3, 112, 112)
    for i, frame in enumerate(frames[:CLIP_FRAMES]):
        clip[i] = preprocess_frame(frame)
    return torch.from_numpy(clip).permute(1, 0, 2, 3)  # (3, 16, 112, 112)
