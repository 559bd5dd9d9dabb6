"""Training speed against what the released code really spends, per dataset, in the same run.

The released loop, before every batch of 2,048 class-balanced draws, runs the CLIP ViT-B/32 text tower on the CPU
over the 4 texts (name + 3 descriptions) of every training class, at its full 77-token context, then sleeps 0.1 s;
then a per-item Dataset behind a DataLoader with a Python class-balanced sampler feeds the network, whose targets
are those texts' mean embeddings. An epoch is 50 such batches (102,400 draws). The tower here has seeded random
weights: the cost is the architecture's, not the weights'. kda's epoch (`kda.train.train_epoch`) draws the same
102,400 with the class matrix encoded once.

Per dataset (the stage whose classes the released code re-encodes, counted from kda/split_roles, texts from
assets/knowledge), both are measured on a few batches and scaled to 50, and said so; the ratio goes to
bench/record.py with README.md's budget (several times faster; the issue's goal: at least 5x on this CPU).

    python bench/bench_train.py [--quick]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from record import figure, peak_memory, quick, times_faster  # noqa: E402

from kda.knowledge import OFFLINE_TEXT_ENCODER, load_knowledge, load_text_encoder  # noqa: E402
from kda.losses import adaptive_margins, kda_loss, loss_preset  # noqa: E402
from kda.model import KDAModel  # noqa: E402
from kda.settings import get_setting  # noqa: E402
from kda.train import TrainConfig, TrainingTensors, optimizer_for, train_epoch  # noqa: E402

VIDEOS = 5000  # UCF-GZSL-sized training set (cls features); the draws per epoch do not depend on it
BATCH, BATCHES = 2048, 50  # the released epoch: 102,400 class-balanced draws
SLEEP_S = 0.1  # the released loop's sleep after encoding, every batch
GOAL = 5.0  # times faster than the released loop, on this CPU
STAGE_ROLES = {1: {"train"}, 2: {"train", "val_unseen"}}  # AVCA split roles trained on in each stage


@dataclass(frozen=True)
class Case:
    dataset: str  # kda/split_roles/<file>.json and assets/knowledge/<file>.json
    file: str
    stage: int
    our_batches: int  # batches of kda's epoch timed in a full run (scaled to BATCHES)


CASES = (
    Case("UCF", "ucf", 1, BATCHES),  # the budget's UCF-GZSL epoch, timed whole
    Case("ActivityNet", "activitynet", 2, 10),
    Case("VGGSound", "vggsound", 2, 10),
)


def stage_texts(case: Case) -> list[list[str]]:
    """The 4 texts (name + 3 descriptions) of every class the released code trains on in this stage."""
    roles = json.loads((ROOT / "kda" / "split_roles" / f"{case.file}.json").read_text())["classes"]
    knowledge = load_knowledge(ROOT / "assets" / "knowledge" / f"{case.file}.json")
    texts = []
    for c in (c for c in roles if c["cls"] in STAGE_ROLES[case.stage]):
        own = knowledge.texts(c["id"]) if c["id"] in knowledge else [c["name"]]
        texts.append((own + [c["name"]] * 4)[:4])  # at the full context every text costs the same
    return texts


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
        self.batch_size, self.rng = batch_size, rng

    def __iter__(self):
        while True:
            classes = self.rng.integers(0, len(self.by_class), size=self.batch_size)
            yield [int(self.rng.choice(self.by_class[c])) for c in classes]


class ReleasedLoop:
    """The released code's batch: every class's texts through the text tower, a sleep, a DataLoader batch, a step."""

    def __init__(self, clip, texts: list[list[str]], features, cap: int | None):
        audio, visual, labels = features
        self.clip, self.texts = clip, [t for per_class in texts for t in per_class]  # (C * 4,)
        self.classes = len(texts)
        self.cap = cap  # encode only this many texts and scale the time (quick runs)
        self.model = KDAModel(get_setting("cls").model_config(embed_dim=clip.dim))
        self.model.fit_input_norm(audio, visual)
        self.optimizer = optimizer_for(self.model, TrainConfig())
        sampler = BalancedBatchSampler(labels, BATCH, np.random.default_rng(1))
        self.loader = iter(DataLoader(PerItemDataset(audio, visual, labels), batch_sampler=sampler))
        self.loss = loss_preset("kda")

    def encode(self) -> tuple[torch.Tensor, float]:
        """(C, E) class targets, and the seconds the full set of texts takes (scaled when capped)."""
        texts = self.texts[: self.cap] if self.cap else self.texts
        start = time.perf_counter()
        with torch.no_grad():  # open_clip's tokenizer pads every text to the 77-token context, as the released did
            embeds = self.clip.model.encode_text(self.clip.tokenizer(texts)).float()  # (T, E)
        seconds = (time.perf_counter() - start) * len(self.texts) / len(texts)
        embeds = embeds.repeat(-(-len(self.texts) // len(texts)), 1)[: len(self.texts)]
        return embeds.reshape(self.classes, 4, -1).mean(1), seconds  # (C, E): the raw mean, as released

    def batch(self) -> tuple[float, float]:
        """(text tower seconds, the rest: sleep + loader + step) of one batch."""
        knowledge, text_s = self.encode()
        start = time.perf_counter()
        time.sleep(SLEEP_S)
        batch = next(self.loader)
        rho = self.model(batch["audio"], batch["video"])
        margins = adaptive_margins(knowledge, self.loss.alpha, self.loss.m0)
        loss = kda_loss(rho, batch["target"], knowledge, margins, self.loss)["total"]
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return text_s, time.perf_counter() - start


def our_epoch(class_matrix: torch.Tensor, features, batches: int) -> float:
    """Seconds of kda's epoch of BATCHES x BATCH draws, timed over `batches` of them and scaled. The class matrix
    (C, E) is encoded once per run, before training (here: the released loop's last targets)."""
    audio, visual, labels = features
    torch.manual_seed(0)
    loss, cfg = loss_preset("kda"), TrainConfig(batch_size=BATCH, batches_per_epoch=batches)
    model = KDAModel(get_setting("cls").model_config(embed_dim=class_matrix.shape[1]))
    model.fit_input_norm(audio, visual)
    data = TrainingTensors(
        torch.from_numpy(audio), torch.from_numpy(visual), torch.from_numpy(labels), class_matrix, labels
    )
    margins = adaptive_margins(class_matrix, loss.alpha, loss.m0)
    start = time.perf_counter()
    train_epoch(model, optimizer_for(model, cfg), data, margins, loss, cfg, np.random.default_rng(0))
    return (time.perf_counter() - start) * BATCHES / batches


def training_features(classes: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    audio = rng.integers(0, 256, size=(VIDEOS, 128)).astype(np.float32)  # (N, 128) VGGish, 8-bit
    visual = np.maximum(rng.normal(size=(VIDEOS, 4096)), 0).astype(np.float32)  # (N, 4096) C3D fc7, ReLU'd
    labels = np.arange(VIDEOS) % classes  # every class has videos
    return audio, visual, labels


def bench_case(case: Case, clip, released_batches: int, our_batches: int, cap: int | None) -> None:
    texts = stage_texts(case)
    features = training_features(len(texts), np.random.default_rng(0))
    what = f"{case.dataset} stage {case.stage}: {len(texts)} classes, {4 * len(texts)} texts"
    with peak_memory() as released_peak:
        loop = ReleasedLoop(clip, texts, features, cap)
        parts = [loop.batch() for _ in range(released_batches)]
    class_matrix = loop.encode()[0]
    text_s = statistics.median(p[0] for p in parts)
    rest_s = statistics.median(p[1] for p in parts)
    released = [BATCHES * (t + r) for t, r in parts]  # seconds per epoch, one value per batch timed
    with peak_memory() as ours_peak:
        ours = our_epoch(class_matrix, features, our_batches)
    scaled = f"{our_batches} of {BATCHES} batches timed" if our_batches < BATCHES else "a whole epoch timed"
    capped = f" (text tower timed on {cap} of {4 * len(texts)} texts, scaled)" if cap else ""
    print(
        f"{what}: released loop per batch: text tower {text_s:.2f} s{capped} + sleep, loader and step "
        f"{rest_s:.2f} s; peak RSS {released_peak.mib:,.0f} MiB"
    )
    figure(
        f"training epoch, {what} ({BATCHES * BATCH:,} draws)",
        ours,
        "s",
        baseline=released,
        baseline_what=f"released loop, {released_batches} batch(es) x {BATCHES}",
        budget=times_faster(GOAL),
        peak_mib=ours_peak.mib,
        note=f"kda: {scaled}; released per batch: text tower {text_s:.2f} s{capped}, the rest {rest_s:.2f} s; "
        f"{statistics.median(released) / ours:.1f}x faster",
    )


def main() -> None:
    small = quick()
    threads = torch.get_num_threads()
    print(f"torch threads {threads}; {VIDEOS:,} videos (cls features), batch {BATCH} x {BATCHES} per epoch")
    clip = load_text_encoder(OFFLINE_TEXT_ENCODER)  # CLIP ViT-B/32's text tower, seeded random weights
    with torch.no_grad():
        clip.model.encode_text(clip.tokenizer(["warm-up"] * 4))  # first-call costs are paid once per run
    for case in CASES:
        bench_case(case, clip, 1 if small else 2, 2 if small else case.our_batches, 32 if small else None)


if __name__ == "__main__":
    main()
