"""Training speed: one epoch of UCF-GZSL-sized data (5,000 videos, cls features) with kda's trainer,
against a baseline measured in the same run that feeds the same model the way the released code
does (a per-item Dataset behind a DataLoader with a Python class-balanced batch sampler).

Prints seconds per epoch and the ratio; asserts nothing. Run: python bench/bench_train.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kda.losses import adaptive_margins, kda_loss, loss_preset  # noqa: E402
from kda.model import KDAModel  # noqa: E402
from kda.settings import get_setting
from kda.train import TrainConfig, TrainingTensors, optimizer_for, train_epoch  # noqa: E402

VIDEOS, CLASSES, REPEATS = 5000, 42, 3


class PerItemDataset(Dataset):
    def __init__(self, audio, visual, labels):
        self.audio, self.visual, self.labels = audio, visual, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {
            "audio": torch.from_numpy(self.audio[i]),
            "video": torch.from_numpy(self.visual[i]),
            "target": int(self.labels[i]),
        }


class BalancedBatchSampler(Sampler):
    """Python-level class-balanced batches: pick classes, then videos of each, batch by batch."""

    def __init__(self, labels, batch_size, rng):
        self.by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.batch_size, self.rng, self.n = batch_size, rng, len(labels)

    def __iter__(self):
        for _ in range(self.n // self.batch_size):
            classes = self.rng.integers(0, len(self.by_class), size=self.batch_size)
            yield [int(self.rng.choice(self.by_class[c])) for c in classes]

    def __len__(self):
        return self.n // self.batch_size


def baseline_epoch(model, optimizer, loader, knowledge, margins, loss_cfg):
    model.train()
    for batch in loader:
        labels = batch["target"]
        rho = model(batch["audio"], batch["video"])
        loss = kda_loss(rho, labels, knowledge, margins, loss_cfg)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg_model = get_setting("cls").model_config()
    audio = rng.integers(0, 256, size=(VIDEOS, 128)).astype(np.float32)
    visual = np.maximum(rng.normal(size=(VIDEOS, 4096)), 0).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=VIDEOS)
    knowledge = torch.nn.functional.normalize(torch.randn(CLASSES, 512), dim=1)
    loss_cfg, cfg = loss_preset("kda"), TrainConfig()
    margins = adaptive_margins(knowledge, loss_cfg.alpha, loss_cfg.m0)

    model = KDAModel(cfg_model)
    model.fit_input_norm(audio, visual)
    optimizer = optimizer_for(model, cfg)
    data = TrainingTensors(torch.from_numpy(audio), torch.from_numpy(visual), torch.from_numpy(labels), knowledge)
    ours = [timed(lambda: train_epoch(model, optimizer, data, margins, loss_cfg, cfg, rng)) for _ in range(REPEATS)]

    model = KDAModel(cfg_model)
    model.fit_input_norm(audio, visual)
    optimizer = optimizer_for(model, cfg)
    loader = DataLoader(
        PerItemDataset(audio, visual, labels), batch_sampler=BalancedBatchSampler(labels, cfg.batch_size, rng)
    )
    base = [
        timed(lambda: baseline_epoch(model, optimizer, loader, knowledge, margins, loss_cfg)) for _ in range(REPEATS)
    ]

    print(f"threads {torch.get_num_threads()}, {VIDEOS} videos, cls dims, batch {cfg.batch_size}, best of {REPEATS}")
    print(f"kda train_epoch          {min(ours):7.3f} s/epoch")
    print(f"per-item DataLoader loop {min(base):7.3f} s/epoch")
    print(f"speed-up                 {min(base) / min(ours):7.2f}x")


if __name__ == "__main__":
    main()
