"""Extraction as two halves that can run apart: the CPU half decodes a video and makes the networks' inputs
(C3D clips or CLIP frames, VGGish log-mel examples); the network half runs C3D / CLIP / VGGish on batches
of those inputs, on any device, and averages them per video.

    video_inputs(path, options)   CPU: yields ("visual", inputs) chunks, then ("done", VideoInfo)
    Networks(setting, weights, device, precision)   the backbones on a device, batched
    extract_many(paths, options, networks, workers=W, batch=B, on_result=...)

With `workers=0` everything runs in this process, one video after another (what `extract_video` does).
With W workers, W processes decode and preprocess videos while this process runs the networks on batches
of B clips drawn from any video: on a GPU the networks take milliseconds, so decoding is what bounds the
throughput. Memory stays bounded whatever the video's length: frames are decoded one clip at a time and
at most 2W chunks of B clips wait in the queue.
"""

from __future__ import annotations

import copy
import multiprocessing
import queue as queue_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kda.errors import KdaError
from kda.media import errors
from kda.media.c3d import BENCHMARK_FPS, benchmark_frames, clip_count, clip_frame_indices, clip_tensor
from kda.media.decode import DEFAULT_LIMITS, Limits, open_video, read_audio, uniform_subset
from kda.media.errors import CorruptMediaError, MediaError, NoAudioTrackError, UnsupportedCodecError
from kda.media.vggish import EXAMPLE_SAMPLES, log_mel_examples, num_examples
from kda.settings import get_setting

PRECISIONS = ("fp32", "bf16")
# C3D clips per forward pass. On a CPU a batch buys no speed and each clip in it holds ~270 MB of activations;
# on a GPU a large batch is what keeps it busy.
CPU_BATCH, GPU_BATCH = 1, 64
DEFAULT_BATCH = None  # None: CPU_BATCH or GPU_BATCH by the networks' device
QUEUE_CHUNKS = 2  # chunks waiting per worker: enough to keep the networks fed, little memory
WORKER_POLL_S = 5.0  # how often the collector checks that its workers are alive

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class ExtractOptions:
    setting: str = "cls"
    max_clips: int | None = 16  # C3D clips per video, spread evenly; None: every clip
    max_examples: int = 64  # VGGish 0.96 s examples per video, spread evenly
    frames: int = 8  # CLIP frames per video, evenly spaced in time
    limits: Limits = DEFAULT_LIMITS

    def check(self) -> ExtractOptions:
        caps = [self.max_examples, self.frames] + ([] if self.max_clips is None else [self.max_clips])
        if min(caps) < 1:
            raise KdaError(
                f"`max_clips`, `max_examples` and `frames` must be >= 1, got {self.max_clips}, "
                f"{self.max_examples}, {self.frames}"
            )
        get_setting(self.setting).require_extractor()
        return self


@dataclass
class VideoInfo:
    """Everything about one video except its visual inputs (which come in chunks before it)."""

    path: str
    duration: float  # seconds
    examples: np.ndarray | None  # (m, 96, 64) VGGish inputs; None: no usable audio
    notes: list[str] = field(default_factory=list)
    visual_units: tuple[int, int] = (0, 0)  # (used, available) C3D clips; CLIP: (frames, frames)
    audio_units: tuple[int, int] = (0, 0)  # (used, available) 0.96 s examples


# ---------------------------------------------------------------------------------------------
# The CPU half


def video_inputs(path: str | Path, options: ExtractOptions, chunk: int = CPU_BATCH) -> Iterator[tuple]:
    """Decode one video into network inputs: ("plan", number of clips or frames), ("visual", (b, 3, 16, 112, 112)
    float32 C3D clips, or (n, H, W, 3) uint8 frames for CLIP) chunks, then ("done", VideoInfo). Raises a
    MediaError."""
    spec = get_setting(options.setting)
    video = open_video(path, options.limits)
    notes = []
    if video.downscaled:
        notes.append(
            f"frames decoded at {video.decode_width}x{video.decode_height} (from {video.width}x{video.height}) to bound memory"
        )
    if spec.visual_backbone == "c3d":
        sequence, _ = benchmark_frames(video.starts, video.duration_s)  # (K,) native frame of each 25 fps frame
        total = clip_count(len(sequence))
        chosen = uniform_subset(total, options.max_clips or total)
        if len(chosen) < total:
            notes.append(
                f"visual: C3D on {len(chosen)} of {total} 16-frame clips at {BENCHMARK_FPS} fps, spread evenly "
                f"(cap: {options.max_clips} clips)"
            )
        yield "plan", len(chosen)
        for start in range(0, len(chosen), chunk):
            clips = [clip_tensor(c3d_clip_frames(video, sequence, c)) for c in chosen[start : start + chunk]]
            yield "visual", np.stack([c.numpy() for c in clips])  # (b, 3, 16, 112, 112), one clip decoded at a time
        visual_units = (len(chosen), total)
    else:
        indices = video.uniform_indices(options.frames)
        yield "plan", len(indices)
        yield "visual", video.frames(indices)  # (n, H, W, 3) uint8
        notes.append(f"visual: CLIP on {len(indices)} frames spread evenly over {video.duration_s:.1f} s")
        visual_units = (len(indices), len(indices))
    examples, audio_units, audio_notes = audio_inputs(video.path, options)
    yield "done", VideoInfo(str(video.path), video.duration_s, examples, notes + audio_notes, visual_units, audio_units)


def c3d_clip_frames(video, sequence: np.ndarray, clip: int) -> np.ndarray:
    """(<=16, h, w, 3) frames of clip `clip` of the 25 fps `sequence` (native indices, repeated below 25 fps);
    each distinct native frame is decoded once."""
    unique, inverse = np.unique(sequence[clip_frame_indices(len(sequence), clip)], return_inverse=True)
    return video.frames(unique)[inverse]


def audio_inputs(path: Path, options: ExtractOptions):
    """(m, 96, 64) log-mel examples or None, (used, available) examples, notes. A missing, undecodable or
    damaged audio track leaves the video visual-only, said in a note."""
    try:
        audio = read_audio(path, options.limits)
    except (NoAudioTrackError, UnsupportedCodecError, CorruptMediaError) as e:
        reason = "no audio track" if isinstance(e, NoAudioTrackError) else f"audio unusable ({type(e).__name__})"
        return None, (0, 0), [f"{reason}: visual-only features"]
    notes = list(audio.notes)
    samples = audio.samples
    total = num_examples(len(samples))
    if total == 0:  # the benchmark would have produced no example (and a NaN mean): pad to one example
        notes.append(f"audio of {audio.duration_s:.2f} s is shorter than one 0.96 s example: zero-padded to one")
        samples = np.pad(samples, (0, EXAMPLE_SAMPLES - len(samples)))
        total = 1
    chosen = uniform_subset(total, options.max_examples)
    if len(chosen) < total:
        notes.append(
            f"audio: VGGish on {len(chosen)} of {total} 0.96 s examples, spread evenly (cap: {options.max_examples})"
        )
    return log_mel_examples(samples, chosen), (len(chosen), total), notes


# ---------------------------------------------------------------------------------------------
# The network half


class Networks:
    """The visual and audio backbones of a feature setting on one device, run on batches."""

    def __init__(self, setting: str, weights: str = "pretrained", device="cpu", precision: str = "fp32"):
        import torch

        from kda.media.backbones import load_backbone

        if precision not in PRECISIONS:
            raise KdaError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        spec = get_setting(setting).require_extractor()
        self.setting, self.precision = setting, precision
        self.device = torch.device(device)
        self.visual_bb = self.on_device(load_backbone(spec.visual_backbone, weights))
        self.audio_bb = self.on_device(load_backbone(spec.audio_backbone, weights))
        self.offline = self.visual_bb.offline or self.audio_bb.offline

    def on_device(self, backbone):
        """The cached CPU backbone itself, or a copy of it on another device (the cache stays on the CPU)."""
        if self.device.type == "cpu":
            return backbone
        moved = copy.copy(backbone)
        moved.model = copy.deepcopy(backbone.model).to(self.device)
        moved.extra = None if backbone.extra is None else copy.deepcopy(backbone.extra).to(self.device)
        if hasattr(moved.model, "visual"):  # a ClipImageEncoder: its tower is the module
            moved.model.visual.to(self.device)
        return moved

    def autocast(self):
        import contextlib

        import torch

        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def visual(self, inputs: np.ndarray) -> np.ndarray:
        """C3D fc7 of clips (b, 3, 16, 112, 112), or CLIP embeddings of frames (n, H, W, 3): (b, Dv) float32."""
        import torch

        from kda.media.clip_frames import embed_frames

        if self.visual_bb.name != "c3d":
            return embed_frames(self.visual_bb.model, inputs, self.device)
        with torch.inference_mode(), self.autocast():
            out = self.visual_bb.model(torch.from_numpy(inputs).to(self.device))  # (b, 4096)
        return out.float().cpu().numpy()

    def audio(self, examples: np.ndarray, batch: int = 32) -> np.ndarray:
        """The PCA'd, 8-bit quantised VGGish embeddings of log-mel examples (m, 96, 64): (m, 128) in 0..255."""
        import torch

        out = []
        for start in range(0, len(examples), batch):
            x = torch.from_numpy(examples[start : start + batch]).to(self.device)[:, None]  # (b, 1, 96, 64)
            with torch.inference_mode(), self.autocast():
                embeddings = self.audio_bb.model(x).float()  # (b, 128)
            out.append(self.audio_bb.extra(embeddings).cpu())  # the quantiser in fp32, as the benchmark
        return torch.cat(out).numpy()


# ---------------------------------------------------------------------------------------------
# Driving both halves


class Accumulator:
    """The visual outputs of one video's chunks, until its VideoInfo arrives."""

    def __init__(self):
        self.outputs: list[np.ndarray] = []

    def finish(self, info: VideoInfo, networks: Networks):
        from kda.media.extract import VideoFeatures

        visual = np.concatenate(self.outputs).mean(axis=0).astype(np.float32)  # (Dv,)
        audio = None if info.examples is None else networks.audio(info.examples).mean(axis=0).astype(np.float32)
        notes = list(info.notes)
        for bb in (networks.visual_bb, networks.audio_bb):
            if bb.offline:
                notes.append(bb.source)
        return VideoFeatures(
            path=info.path,
            setting=networks.setting,
            audio=audio,
            visual=visual,
            duration=info.duration,
            offline=networks.offline,
            notes=notes,
            visual_units=info.visual_units,
            audio_units=info.audio_units,
        )


def extract_many(
    paths: dict[str, Path],
    options: ExtractOptions,
    networks: Networks,
    on_result: Callable[[str, object], None],
    *,
    workers: int = 0,
    batch: int | None = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> None:
    """Features of every video in `paths` (key -> file): `on_result(key, VideoFeatures | MediaError)` once per
    video, in the order they finish. A file that cannot be used reports its MediaError and stops nothing."""
    options.check()
    batch = batch or (CPU_BATCH if networks.device.type == "cpu" else GPU_BATCH)
    if batch < 1 or workers < 0:
        raise KdaError(f"`batch` must be >= 1 and `workers` >= 0, got {batch} and {workers}")
    if workers == 0:
        for key, path in paths.items():
            on_result(key, extract_in_process(path, options, networks, batch, progress))
        return
    collect(paths, options, networks, on_result, workers, batch)


def extract_in_process(path, options, networks, batch, progress=None):
    acc, planned = Accumulator(), 0
    try:
        for kind, payload in video_inputs(path, options, batch):
            if kind == "plan":
                planned = payload
            elif kind == "visual":
                acc.outputs.append(networks.visual(payload))
                if progress:
                    progress("visual", sum(len(o) for o in acc.outputs), planned)
            else:
                features = acc.finish(payload, networks)
                if progress:
                    progress("audio", 1, 1)
                return features
    except MediaError as e:
        return e
    raise KdaError(f"{path}: the decoder stopped without finishing the video")  # unreachable by construction


def worker_loop(jobs, results, options: ExtractOptions, chunk: int) -> None:
    """A decoding process: takes (key, path) jobs until None, sends ("visual" | "done" | "error", key, payload)."""
    while (job := jobs.get()) is not None:
        key, path = job
        try:
            for kind, payload in video_inputs(path, options, chunk):
                results.put((kind, key, payload))
        except MediaError as e:
            results.put(("error", key, (type(e).__name__, e.path, e.reason)))
        except Exception as e:  # a bug, not bad media: say so in the parent rather than hang it
            results.put(("crash", key, f"{type(e).__name__}: {e}"))


def collect(paths, options, networks, on_result, workers: int, batch: int) -> None:
    """Run `workers` decoding processes and the networks here, batching clips across videos."""
    context = multiprocessing.get_context("spawn")  # no fork: the parent holds torch's thread pools
    jobs, results = context.Queue(), context.Queue(maxsize=QUEUE_CHUNKS * workers)
    for item in paths.items():
        jobs.put(item)
    procs = [
        context.Process(target=worker_loop, args=(jobs, results, options, batch), daemon=True) for _ in range(workers)
    ]
    for p in procs:
        jobs.put(None)
        p.start()
    pending: dict[str, Accumulator] = {}
    waiting: list[tuple[str, np.ndarray]] = []  # visual chunks not yet through the network

    def flush() -> None:
        if not waiting:
            return
        outputs = networks.visual(np.concatenate([chunk for _, chunk in waiting]))  # one batch, several videos
        start = 0
        for key, chunk in waiting:
            pending[key].outputs.append(outputs[start : start + len(chunk)])
            start += len(chunk)
        waiting.clear()

    try:
        remaining = len(paths)
        while remaining:
            try:
                kind, key, payload = results.get(timeout=WORKER_POLL_S)
            except queue_module.Empty:
                if not any(p.is_alive() for p in procs):
                    raise KdaError("every decoding worker stopped before the videos were done") from None
                continue
            if kind == "plan":
                continue
            if kind == "visual":
                pending.setdefault(key, Accumulator())
                if networks.visual_bb.name != "c3d":  # CLIP frames: one video's frames are one batch
                    pending[key].outputs.append(networks.visual(payload))
                    continue
                waiting.append((key, payload))
                if sum(len(c) for _, c in waiting) >= batch:
                    flush()
                continue
            remaining -= 1
            if kind == "done":
                flush()
                on_result(key, pending.pop(key, Accumulator()).finish(payload, networks))
            elif kind == "error":
                name, path, reason = payload
                pending.pop(key, None)
                on_result(key, getattr(errors, name)(path, reason))
            else:
                raise KdaError(f"extraction of {paths[key]} failed in a worker: {payload}")
    finally:
        for p in procs:
            p.kill()
            p.join(timeout=5)
