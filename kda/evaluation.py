"""Evaluating a KDA model: distances from videos to candidate classes, GZSL metrics over them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kda.benchmark import VideoSet
from kda.knowledge.class_matrix import ClassMatrix
from kda.metrics import GZSLResult, gzsl_metrics, search_beta
from kda.model import KDAModel, check_dims
from kda.prediction import distances


@dataclass
class Evaluation:
    """A model's distances on a video set over the candidate classes (seen + unseen of a stage)."""

    distances: np.ndarray  # (N, C)
    labels: np.ndarray  # (N,) index into candidates
    candidates: list[int]  # class indices into the benchmark class list
    seen_mask: np.ndarray  # (C,) bool
    urls: list[str]
    rho: np.ndarray | None = None  # (N, E) float32, the fused embeddings the distances were measured from

    def metrics(self, beta: float | None = None, grid: str = "gaps") -> GZSLResult:
        """At a fixed beta, or at the beta with the best HM on `grid` (kda.metrics.BETA_GRIDS) when beta is None."""
        if beta is None:
            return search_beta(self.distances, self.labels, self.seen_mask, grid)
        return gzsl_metrics(self.distances, self.labels, self.seen_mask, beta)


@torch.no_grad()
def embed_videos(model: KDAModel, audio: np.ndarray, visual: np.ndarray, batch: int = 4096) -> torch.Tensor:
    """rho_av for a set of videos, in eval mode, on the model's device. (N, Da), (N, Dv) -> (N, E) on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(torch.from_numpy(audio[i : i + batch]).to(device), torch.from_numpy(visual[i : i + batch]).to(device))
        for i in range(0, len(audio), batch)
    ]
    return torch.cat(out).cpu() if out else torch.zeros(0, model.cfg.embed_dim)


def evaluate(
    model: KDAModel, videos: VideoSet, class_matrix: np.ndarray, seen: list[int], unseen: list[int]
) -> Evaluation:
    """class_matrix (num classes, E) indexed like the benchmark's class list."""
    candidates = sorted(seen + unseen)
    local = {c: i for i, c in enumerate(candidates)}
    rho = embed_videos(model, videos.audio, videos.visual)
    dist = distances(rho, class_matrix[candidates])
    labels = np.array([local[y] for y in videos.labels], dtype=np.int64)
    seen_mask = np.isin(candidates, seen)
    return Evaluation(dist, labels, candidates, seen_mask, videos.urls, rho.numpy())


def save_scores(evaluation: Evaluation, class_names: list[str], path: str | Path, beta: float) -> Path:
    """Write per-video distances so the metrics can be recomputed independently.

    `.npz` (or `.json` with the same keys as lists):
        distances  (N, C) float  L2 distance of each video to each candidate class
        labels     (N,)   int    true class, index into class_names
        class_names (C,)  str
        seen       (C,)   bool   seen during training
        urls       (N,)   str
        beta       ()     float  calibrated-stacking offset the reported metrics used
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [class_names[c] for c in evaluation.candidates]
    if path.suffix == ".json":
        data = {
            "distances": evaluation.distances.round(6).tolist(),
            "labels": evaluation.labels.tolist(),
            "class_names": names,
            "seen": evaluation.seen_mask.tolist(),
            "urls": list(evaluation.urls),
            "beta": beta,
        }
        path.write_text(json.dumps(data))
    else:
        np.savez(
            path,
            distances=evaluation.distances.astype(np.float32),
            labels=evaluation.labels,
            class_names=np.array(names),
            seen=evaluation.seen_mask,
            urls=np.array(evaluation.urls),
            beta=np.array(beta),
        )
    return path


def evaluate_checkpoint(ckpt, bench) -> Evaluation:
    """A checkpoint on a benchmark's test split (stage 2), with the checkpoint's own class matrix."""
    check_dims(ckpt.model.cfg, *bench.dims, source=f"benchmark at {bench.root}")
    stage = bench.stage(2)
    matrix = ClassMatrix(ckpt.class_ids, ckpt.class_matrix, ckpt.text_encoder).bind(bench.classes, known=ckpt.class_ids)
    return evaluate(ckpt.model, stage.evaluation, matrix.vectors, stage.seen, stage.unseen)
