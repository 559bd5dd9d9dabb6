"""Training and evaluation with the two-stage GZSL protocol.

Stage 1 trains on stage_1_train and evaluates on validation (val-seen + val-unseen) after every
epoch; the best epoch and calibration beta are chosen by validation HM. Stage 2 retrains a fresh
model on all of stage 1 for that many epochs, replaying stage 1's learning-rate schedule, and is
evaluated once on test with the chosen beta.

The `released` protocol reproduces the authors' code: it trains on stage 2 and picks epoch and beta
on the test set, so its numbers are optimistic; it is there for comparison only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone

import numpy as np
import torch
from tqdm.auto import tqdm

from kda import __version__
from kda.benchmark import Benchmark, Stage, VideoSet, feature_source
from kda.checkpoint import Checkpoint, ClassEntry, ReferenceSamples, TestSplit
from kda.errors import KdaError
from kda.evaluation import embed_videos, evaluate
from kda.knowledge.class_matrix import ClassMatrix
from kda.knowledge_ab import checkpoint_candidates, compact, split_of_videos
from kda.losses import LossConfig, adaptive_margins, kda_loss
from kda.metrics import BETA_GRIDS, GZSLResult
from kda.model import DimensionMismatchError, KDAModel, ModelConfig, check_dims

PROTOCOLS = ("paper", "released")


@dataclass
class TrainConfig:
    epochs: int = 50  # stage-1 epochs (stage 2 uses the best of them)
    batch_size: int = 256
    lr: float = 1e-3
    adam_betas: tuple[float, float] = (0.5, 0.999)
    lr_factor: float = 0.1  # ReduceLROnPlateau on validation HM
    lr_patience: int = 4
    class_balanced: bool = True  # sample every class equally often
    seed: int = 42
    protocol: str = "paper"
    batches_per_epoch: int | None = None  # None: one pass over the videos; N: N batches of batch_size draws
    beta_grid: str = "gaps"  # kda.metrics.BETA_GRIDS: "gaps" (every decision gap) or "avca" (0..3 step 0.2)
    preset: str = "paper"  # the kda.presets entry these settings came from (recorded, not read)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EpochLog:
    stage: int
    epoch: int
    lr: float
    loss: float
    align: float
    margin: float | None
    metrics: dict | None = None  # GZSL result of the evaluation after this epoch, if any


@dataclass
class TrainResult:
    model: KDAModel
    beta: float
    best_epoch: int
    validation: GZSLResult | None  # stage-1 result at the chosen epoch
    test: GZSLResult
    log: list[EpochLog] = field(default_factory=list)
    test_rho: np.ndarray | None = None  # (N, E) rho_av of the test videos `test` was measured on


def balanced_order(labels: np.ndarray, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """One epoch of `size` indices (default: as many as there are videos), each class drawn equally often."""
    classes, counts = np.unique(labels, return_counts=True)
    weight = (1.0 / counts)[np.searchsorted(classes, labels)]
    size = len(labels) if size is None else size
    return rng.choice(len(labels), size=size, replace=True, p=weight / weight.sum())


def epoch_order(labels: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """The training indices of one epoch: one pass over the videos, or `batches_per_epoch` full batches
    (the released code's 50 x 2048 = 102,400 class-balanced draws)."""
    if cfg.batches_per_epoch is None:
        return balanced_order(labels, rng) if cfg.class_balanced else rng.permutation(len(labels))
    size = cfg.batches_per_epoch * cfg.batch_size
    if cfg.class_balanced:
        return balanced_order(labels, rng, size)
    return rng.choice(len(labels), size=size, replace=True)


def batches(order: np.ndarray, size: int):
    for i in range(0, len(order), size):
        chunk = order[i : i + size]
        if len(chunk) > 1:  # BatchNorm needs two samples
            yield chunk


def train_epoch(model, optimizer, data: TrainingTensors, margins, loss_cfg, cfg: TrainConfig, rng) -> dict:
    model.train()
    order = epoch_order(data.host_labels, cfg, rng)  # sampled on the host, indices sent with each batch
    totals: dict[str, torch.Tensor] = {}  # summed on the device: no host sync per step
    steps = 0
    for idx in batches(order, cfg.batch_size):
        idx = torch.from_numpy(idx).to(data.labels.device, non_blocking=True)
        rho = model(data.audio[idx], data.visual[idx])
        parts = kda_loss(rho, data.labels[idx], data.class_matrix, margins, loss_cfg)
        optimizer.zero_grad(set_to_none=True)
        parts["total"].backward()
        optimizer.step()
        for k, v in parts.items():
            totals[k] = totals.get(k, 0.0) + v.detach().double()
        steps += 1
    if not steps:
        raise KdaError(f"{len(order)} training videos: at least 2 are needed to form a batch")
    means = {k: float(v) / steps for k, v in totals.items()}  # one sync per epoch
    if not math.isfinite(means["total"]):
        raise KdaError("training diverged (non-finite loss); lower `lr` or check the features")
    return means


@dataclass
class TrainingTensors:
    audio: torch.Tensor  # (N, Da)
    visual: torch.Tensor  # (N, Dv)
    labels: torch.Tensor  # (N,) index into class_matrix rows (the training classes)
    class_matrix: torch.Tensor  # (C_train, E)
    host_labels: np.ndarray  # (N,) the labels on the host, where batches are sampled


def training_tensors(videos: VideoSet, class_matrix: np.ndarray, seen: list[int], device="cpu") -> TrainingTensors:
    """The training set on `device`, once: a GPU then never waits for host-to-device copies of features."""
    local = {c: i for i, c in enumerate(seen)}
    unknown = sorted(set(videos.labels.tolist()) - set(seen))
    if unknown:
        raise KdaError(f"training videos of classes outside the seen split: {unknown[:5]}")
    labels = np.array([local[y] for y in videos.labels], dtype=np.int64)
    return TrainingTensors(
        torch.from_numpy(videos.audio).to(device),
        torch.from_numpy(videos.visual).to(device),
        torch.from_numpy(labels).to(device),
        torch.from_numpy(class_matrix[seen]).to(device),
        labels,
    )


def new_model(model_cfg: ModelConfig, videos: VideoSet, seed: int) -> tuple[KDAModel, np.random.Generator]:
    torch.manual_seed(seed)
    model = KDAModel(model_cfg)
    model.fit_input_norm(videos.audio, videos.visual)
    return model, np.random.default_rng(seed)


def optimizer_for(model: KDAModel, cfg: TrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.adam_betas)


def run_stage(
    stage: Stage,
    class_matrix: np.ndarray,
    model_cfg: ModelConfig,
    loss_cfg: LossConfig,
    cfg: TrainConfig,
    stage_number: int,
    epochs: int,
    lr_schedule: list[float] | None = None,
    evaluate_each_epoch: bool = True,
    progress: bool = True,
    on_epoch: Callable[[EpochLog], None] | None = None,
    device="cpu",
) -> tuple[KDAModel, list[EpochLog], dict | None]:
    """Train a fresh model for `epochs`. With evaluation, the LR follows ReduceLROnPlateau on HM and
    the state dict of the best epoch so far is returned too; without, `lr_schedule` is replayed."""
    model, rng = new_model(model_cfg, stage.train, cfg.seed)
    model.to(device)
    data = training_tensors(stage.train, class_matrix, stage.seen, device)
    margins = adaptive_margins(data.class_matrix, loss_cfg.alpha, loss_cfg.m0)
    optimizer = optimizer_for(model, cfg)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=cfg.lr_factor, patience=cfg.lr_patience
    )
    log, best_state = [], None
    bar = tqdm(range(1, epochs + 1), desc=f"stage {stage_number}", disable=not progress, leave=False)
    for epoch in bar:
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_schedule[epoch - 1]
        lr = optimizer.param_groups[0]["lr"]
        parts = train_epoch(model, optimizer, data, margins, loss_cfg, cfg, rng)
        entry = EpochLog(stage_number, epoch, lr, parts["total"], parts["align"], parts.get("margin"))
        if evaluate_each_epoch:
            result = evaluate(model, stage.evaluation, class_matrix, stage.seen, stage.unseen).metrics(
                grid=cfg.beta_grid
            )
            entry.metrics = result.to_dict()
            plateau.step(result.hm)
            bar.set_postfix(loss=f"{entry.loss:.3f}", hm=f"{result.hm:.2f}")
        else:
            bar.set_postfix(loss=f"{entry.loss:.3f}")
        log.append(entry)
        if evaluate_each_epoch and best_epoch(log) == epoch:  # the best so far, by the rule that picks the epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if on_epoch:
            on_epoch(entry)
    return model, log, best_state


def best_epoch(log: list[EpochLog]) -> int:
    """1-based epoch with the best HM (the earliest on ties)."""
    hms = [e.metrics["hm"] for e in log]
    return int(np.argmax(hms)) + 1


def train(
    bench: Benchmark,
    class_matrix: ClassMatrix,
    model_cfg: ModelConfig,
    loss_cfg: LossConfig,
    cfg: TrainConfig,
    progress: bool = True,
    on_epoch: Callable[[EpochLog], None] | None = None,
    device="cpu",
) -> TrainResult:
    """Train and evaluate one model on a benchmark, on `device`. `class_matrix` must be bound
    to `bench.classes`. The returned model is on the CPU."""
    if cfg.protocol not in PROTOCOLS:
        raise KdaError(f"unknown protocol {cfg.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if cfg.beta_grid not in BETA_GRIDS:
        raise KdaError(f"unknown beta grid {cfg.beta_grid!r}; choose one of {', '.join(BETA_GRIDS)}")
    if cfg.batches_per_epoch is not None and cfg.batches_per_epoch < 1:
        raise KdaError(f"`batches_per_epoch` must be at least 1 (or None for one pass), not {cfg.batches_per_epoch}")
    if class_matrix.names != bench.classes:
        raise KdaError("the class matrix is not bound to the benchmark's class list (use ClassMatrix.bind)")
    check_dims(model_cfg, *bench.dims, source=f"benchmark at {bench.root}")
    if class_matrix.vectors.shape[1] != model_cfg.embed_dim:
        raise DimensionMismatchError(
            f"class-matrix rows have {class_matrix.vectors.shape[1]} dims but the model's embed_dim is {model_cfg.embed_dim}"
        )
    vectors = class_matrix.vectors
    stage_2 = bench.stage(2)
    kwargs = dict(progress=progress, on_epoch=on_epoch, device=device)
    if cfg.protocol == "released":
        warnings.warn(
            "protocol 'released' selects the epoch and beta on the TEST set; its numbers are optimistic", stacklevel=2
        )
        model, log, best_state = run_stage(stage_2, vectors, model_cfg, loss_cfg, cfg, 2, cfg.epochs, **kwargs)
        epoch = best_epoch(log)
        model.load_state_dict(best_state)
        test = GZSLResult(**log[epoch - 1].metrics)
        rho = evaluate(model, stage_2.evaluation, vectors, stage_2.seen, stage_2.unseen).rho  # that epoch's again
        return TrainResult(model.cpu(), test.beta, epoch, None, test, log, rho)

    stage_1 = bench.stage(1)
    _, log, _ = run_stage(stage_1, vectors, model_cfg, loss_cfg, cfg, 1, cfg.epochs, **kwargs)
    epoch = best_epoch(log)
    validation = GZSLResult(**log[epoch - 1].metrics)
    schedule = [e.lr for e in log[:epoch]]
    model, log_2, _ = run_stage(
        stage_2, vectors, model_cfg, loss_cfg, cfg, 2, epoch, schedule, evaluate_each_epoch=False, **kwargs
    )
    tested = evaluate(model, stage_2.evaluation, vectors, stage_2.seen, stage_2.unseen)
    test = replace(tested.metrics(validation.beta), grid=f"beta chosen on validation, {validation.grid}")
    return TrainResult(model.cpu(), validation.beta, epoch, validation, test, log + log_2, tested.rho)


def to_checkpoint(
    result: TrainResult,
    bench: Benchmark,
    class_matrix: ClassMatrix,
    loss_cfg: LossConfig,
    cfg: TrainConfig,
    provenance: dict | None = None,
    samples_per_class: int = 3,
) -> Checkpoint:
    """A checkpoint over the stage-2 classes: seen = stage_2_train, unseen = stage_2_test_unseen, with
    `samples_per_class` test videos of each class as its reference sample (none when 0), and the rho_av of
    every test video (the ones its test metrics were measured on), for knowledge A/B on the benchmark."""
    seen = set(bench.splits["stage_2_train"])
    ids = sorted(seen | set(bench.splits["stage_2_test_unseen"]))
    rows = class_matrix.bind(ids, known=class_matrix.names)
    features = feature_source(bench.root)
    test_videos = bench.stage(2).evaluation
    metrics = {"best_epoch": result.best_epoch, "test": result.test.to_dict()}
    if result.validation is not None:
        metrics["validation"] = result.validation.to_dict()
    ckpt = Checkpoint(
        model=result.model,
        setting=bench.setting,
        text_encoder=class_matrix.encoder,
        classes=[ClassEntry(c, bench.readable.get(c, c), c in seen) for c in ids],
        class_matrix=rows.vectors,
        beta=result.beta,
        feature_weights=features["weights"],
        knowledge=rows.knowledge,
        class_matrix_form=rows.form,
        text_vectors=rows.text_vectors,
        provenance={
            "dataset": bench.dataset,
            "root": str(bench.root),
            "setting": bench.setting,
            "features": features,
            "protocol": cfg.protocol,
            "loss": loss_cfg.to_dict(),
            "train": cfg.to_dict(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "kda_version": __version__,
            **(provenance or {}),
        },
        metrics=metrics,
        samples=reference_samples(test_videos, bench.classes, ids, samples_per_class, cfg.seed),
    )
    ckpt.test_split = stored_test_split(ckpt, result, test_videos, bench.classes)
    return ckpt


def stored_test_split(ckpt: Checkpoint, result: TrainResult, videos: VideoSet, bench_classes: list[str]) -> TestSplit:
    """The test videos' rho_av as training measured them (or from the model, for a result without them), in
    float16 where that changes no metric."""
    rho = result.test_rho if result.test_rho is not None else embed_videos(result.model, videos.audio, videos.visual)
    split = split_of_videos(videos, np.asarray(rho), bench_classes, ckpt.class_ids)
    return compact(split, ckpt.class_ids, checkpoint_candidates(ckpt), ckpt.beta)


def reference_samples(
    videos: VideoSet, bench_classes: list[str], ids: list[str], per_class: int, seed: int
) -> ReferenceSamples | None:
    """Up to `per_class` videos of each class in `ids`, drawn with `seed`; labels index `ids`."""
    if per_class <= 0:
        return None
    rng = np.random.default_rng(seed)
    position = {c: i for i, c in enumerate(ids)}
    labels = np.array([position.get(bench_classes[y], -1) for y in videos.labels])  # (N,), -1: not a candidate
    chosen = []
    for label in range(len(ids)):
        rows = np.flatnonzero(labels == label)
        chosen.extend(sorted(rng.choice(rows, size=min(per_class, len(rows)), replace=False)))
    chosen = np.array(chosen, dtype=np.int64)
    return ReferenceSamples(
        videos.audio[chosen], videos.visual[chosen], labels[chosen], [videos.urls[i] for i in chosen]
    )
