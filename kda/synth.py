"""Synthetic AVCA benchmarks: the real class names and split roles of a benchmark, with features that
carry a learnable signal tied to per-class knowledge vectors, so zero-shot transfer can be learnt.

Each class c has a latent code z_c (k dims) and every video of c gets features that are a fixed non-linear
function of z_c plus per-video noise. Without given knowledge, codes are drawn in clusters (so some classes
are similar) and the knowledge vector is t_c = normalise(B z_c). With real knowledge (encoded class
descriptions), z_c is the projection of t_c on its top k principal components, so classes whose
descriptions are alike get alike features, and the semantic structure of the knowledge shows in the data. A model that learns features -> knowledge therefore
transfers to classes it never saw, as real knowledge does. Feature scales mimic the public features:
cls audio is the mean of 8-bit quantised values (0..255), cls visual non-negative ReLU activations.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kda.benchmark import (
    FEATURE_FOLDERS,
    ROLE_FOLDERS,
    SYNTHETIC_MANIFEST,
    ClassInfo,
    builtin_classes,
    split_lists_from_roles,
    write_class_split,
    write_feature_file,
    write_split_csv,
)
from kda.knowledge.class_matrix import ClassMatrix, save_class_matrix, unit_rows
from kda.settings import get_setting

SYNTHETIC_ENCODER = "synthetic"
KNOWLEDGE_FILE = "knowledge_vectors.npz"


@dataclass
class SynthConfig:
    train_videos: int = 16  # per class in stage_1_train
    eval_videos: int = 6  # per class in every other folder
    latent_dim: int = 12  # k: intrinsic dimension of the knowledge
    clusters: int = 8  # groups of similar classes
    cluster_spread: float = 0.45  # class codes around their cluster centre (centres have unit spread)
    video_noise: float = 0.3  # per-video noise on the latent code
    embed_dim: int = 512  # knowledge vector width
    seed: int = 0
    # Total videos of each feature folder, spread as evenly as possible over its classes (the first classes get
    # one more), in place of train_videos/eval_videos; for a benchmark's real split sizes (bench/rehearsal.py).
    folder_videos: dict[str, int] | None = None


@dataclass
class SynthSummary:
    root: Path
    knowledge: Path
    classes: int
    videos: int


class FeatureMaps:
    """Fixed random maps from latent codes to audio/visual features of one setting."""

    def __init__(self, setting: str, k: int, rng: np.random.Generator):
        self.setting = setting
        self.audio_dim, self.visual_dim = get_setting(setting).dims
        self.audio = rng.normal(size=(k, self.audio_dim)) / np.sqrt(k)
        self.visual = rng.normal(size=(k, self.visual_dim)) / np.sqrt(k)
        self.visual_bias = rng.normal(-0.5, 0.5, size=self.visual_dim)

    def __call__(self, codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(N, k) -> audio (N, Da), visual (N, Dv)."""
        a = np.tanh(codes @ self.audio) * 1.5
        v = codes @ self.visual
        if self.setting == "cls":
            # VGGish post-processing: clip to [-2, 2], 8-bit quantise; the feature is a mean over examples.
            examples = a[:, None, :] + rng.normal(0, 0.3, size=(len(a), 4, a.shape[1]))
            a = np.floor((np.clip(examples, -2, 2) + 2) * 255 / 4).mean(axis=1)
            v = np.maximum(2.0 * (v + self.visual_bias) + rng.normal(0, 0.3, size=v.shape), 0)  # fc7 after ReLU
        else:
            a = a + rng.normal(0, 0.1, size=a.shape)
            v = np.tanh(v) + rng.normal(0, 0.1, size=v.shape)
        return a.astype(np.float32), v.astype(np.float32)


def latent_codes(n: int, cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(cfg.clusters, cfg.latent_dim))
    members = rng.integers(0, cfg.clusters, size=n)
    return centres[members] + cfg.cluster_spread * rng.normal(size=(n, cfg.latent_dim))


def codes_from_knowledge(knowledge: np.ndarray, k: int) -> np.ndarray:
    """Latent codes from knowledge vectors: their coordinates on the top-k principal axes, scaled by one
    factor to unit mean variance (so relative importance of the axes is kept). (C, E) -> (C, k)."""
    centred = knowledge - knowledge.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)  # (min(C, E), E), strongest first
    codes = centred @ axes[:k].T  # (C, k)
    return codes / np.sqrt((codes**2).mean())


def videos_per_class(classes: list[ClassInfo], setting: str, cfg: SynthConfig) -> dict[tuple[str, str], int]:
    """(feature folder, class id) -> how many videos of that class the folder gets."""
    members = {
        folder: [c.id for c in classes if folder in ROLE_FOLDERS.get(c.roles[setting], ())]
        for folder in FEATURE_FOLDERS
    }
    counts = {}
    for folder, ids in members.items():
        for i, class_id in enumerate(ids):
            if cfg.folder_videos is not None:
                total = cfg.folder_videos[folder]
                counts[folder, class_id] = total // len(ids) + (i < total % len(ids))
            else:
                counts[folder, class_id] = cfg.train_videos if folder == "stage_1_train" else cfg.eval_videos
    return counts


def write_synthetic_benchmark(
    out: str | Path, dataset: str, setting: str, cfg: SynthConfig | None = None, knowledge: ClassMatrix | None = None
) -> SynthSummary:
    """Write a synthetic dataset root in the AVCA layout plus `knowledge_vectors.npz` inside it. With
    `knowledge` (vectors of the benchmark's classes), features follow that knowledge and it is saved as is."""
    cfg = cfg or SynthConfig()
    root = Path(out)
    rng = np.random.default_rng(cfg.seed)
    classes = builtin_classes(dataset)
    names = [c.id for c in classes]
    if knowledge is None:
        codes = latent_codes(len(classes), cfg, rng)  # (C, k)
        basis = rng.normal(size=(cfg.latent_dim, cfg.embed_dim))
        vectors, encoder = unit_rows(codes @ basis), SYNTHETIC_ENCODER  # (C, E)
    else:
        vectors, encoder = knowledge.bind(names, known=knowledge.names).vectors, knowledge.encoder
        codes = codes_from_knowledge(vectors, cfg.latent_dim)
    maps = FeatureMaps(setting, cfg.latent_dim, rng)

    splits = split_lists_from_roles(classes, setting)
    counts = videos_per_class(classes, setting, cfg)
    write_class_split(root, dataset, setting, names, {c.id: c.name for c in classes}, splits)
    csv_rows: dict[str, list[tuple[str, str]]] = {folder: [] for folder in splits}
    videos = 0
    for info, code in zip(classes, codes, strict=True):
        for folder in ROLE_FOLDERS.get(info.roles[setting], ()):
            n = counts[folder, info.id]
            samples = code + cfg.video_noise * rng.normal(size=(n, cfg.latent_dim))
            audio, visual = maps(samples, rng)
            urls = [f"synth_{info.id.replace(' ', '_')}_{folder}_{j:04d}" for j in range(n)]
            write_feature_file(root, setting, "audio", folder, info.id, audio, urls)
            write_feature_file(root, setting, "video", folder, info.id, visual, urls)
            csv_rows[folder] += [(u, info.id) for u in urls]
            videos += n
    csv_rows["stage_2_train"] = (
        csv_rows["stage_1_train"] + csv_rows["stage_1_val_seen"] + csv_rows["stage_1_val_unseen"]
    )
    for split, rows in csv_rows.items():
        write_split_csv(root, setting, split, rows, names)
    knowledge_path = save_class_matrix(root / KNOWLEDGE_FILE, names, vectors, encoder)
    manifest = {"dataset": dataset, "setting": setting, "config": asdict(cfg), "knowledge_encoder": encoder}
    (root / SYNTHETIC_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return SynthSummary(root, knowledge_path, len(classes), videos)
