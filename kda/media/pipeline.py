"""Extraction as two halves that can run apart: the CPU half decodes a video and makes the networks' inputs
(C3D clips or CLIP frames, VGGish log-mel examples); the network half runs C3D / CLIP / VGGish on batches
of those inputs, on any device, and averages them per video.

    video_inputs(path, options)   CPU: yields a Plan, VisualChunks, then the video's VideoInfo
    Networks(setting, weights, device, precision)   the backbones on a device, batched
    extract_many(paths, options, networks, workers=W, batch=B, on_result=...)

With `workers=0` everything runs in this process, one video after another (what `VideoExtractor` does).
With W workers, W processes decode and preprocess videos while this process runs the networks on batches
of B clips drawn from any video: on a GPU the networks take milliseconds, so decoding is what bounds the
throughput. Memory stays bounded whatever the video's length: frames are decoded one clip at a time and
at most 2W chunks of B clips wait in the queue.

`ExtractOptions` (what each video gives) and `NetworkOptions` (how the networks run) hold the one definition
of every extraction default; the library, the CLI and the app take theirs from here.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import queue as queue_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kda.errors import KdaError
from kda.media import errors
from kda.media.backbones import load_backbone
from kda.media.c3d import BENCHMARK_FPS, CLIP_FRAMES, benchmark_frames, clip_count, clip_frame_indices, clip_tensor
from kda.media.clip_frames import embed_frames
from kda.media.decode import DEFAULT_LIMITS, Limits, open_video, read_audio, uniform_subset
from kda.media.errors import CorruptMediaError, MediaError, NoAudioTrackError, UnsupportedCodecError
from kda.media.vggish import EXAMPLE_SAMPLES, log_mel_examples, num_examples
from kda.settings import get_setting

PRECISIONS = ("fp32", "bf16")
# C3D clips per forward pass. On a CPU a batch buys no speed and each clip in it holds ~270 MB of activations;
# on a GPU a large batch is what keeps it busy.
CPU_BATCH, GPU_BATCH = 1, 64
DEFAULT_BATCH = None  # None: CPU_BATCH or GPU_BATCH by the networks' device
DEFAULT_MAX_EXAMPLES = 64  # VGGish examples (0.96 s each) per video: ~75 ms each on 2 CPU cores
DEFAULT_FRAMES = 8  # CLIP frames per video, evenly spaced in time
QUEUE_CHUNKS = 2  # chunks waiting per worker: enough to keep the networks fed, little memory
WORKER_POLL_S = 5.0  # how often the collector checks that its workers are alive

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class ExtractOptions:
    """What the CPU half takes from each video (sent to worker processes as it is)."""

    setting: str = "cls"
    max_clips: int | None = None  # C3D clips per video, spread evenly; None: every clip (benchmark-exact)
    max_examples: int = DEFAULT_MAX_EXAMPLES  # VGGish 0.96 s examples per video, spread evenly
    frames: int = DEFAULT_FRAMES  # CLIP frames per video, evenly spaced in time
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


@dataclass(frozen=True)
class NetworkOptions:
    """How the network half runs."""

    weights: str = "pretrained"  # or "offline": seeded random weights, whose features carry no meaning
    device: str | torch.device = "cpu"  # where the backbones run (kda.device.resolve_device)
    precision: str = "fp32"  # or "bf16": faster on GPUs, not benchmark-exact
    batch: int | None = DEFAULT_BATCH  # C3D clips per forward pass


# ---------------------------------------------------------------------------------------------
# What the CPU half sends, per video: one Plan, then VisualChunks, then its VideoInfo. A worker process
# sends each as (key, chunk), or (key, Failed) for a file that cannot be used, or (key, Crashed) for a bug.


@dataclass(frozen=True)
class Plan:
    units: int  # visual inputs that will follow: C3D clips or CLIP frames


@dataclass(frozen=True)
class VisualChunk:
    inputs: np.ndarray  # (b, 3, 16, 112, 112) float32 C3D clips, or (n, H, W, 3) uint8 CLIP frames


@dataclass
class VideoInfo:
    """Everything about one video except its visual inputs (which come in chunks before it)."""

    path: str
    duration: float  # seconds
    examples: np.ndarray | None  # (m, 96, 64) VGGish inputs; None: no usable audio
    notes: list[str] = field(default_factory=list)
    audio_missing: str = ""  # why `examples` is None: "no audio track" or "audio unusable (...)"
    visual_units: tuple[int, int] = (0, 0)  # (used, available) C3D clips; CLIP: (frames, frames)
    audio_units: tuple[int, int] = (0, 0)  # (used, available) 0.96 s examples


Chunk = Plan | VisualChunk | VideoInfo


@dataclass(frozen=True)
class Failed:
    """A MediaError from a worker, by its parts (a MediaError does not unpickle): rebuilt by `error()`."""

    kind: str  # the class's name in kda.media.errors
    path: str
    reason: str

    def error(self) -> MediaError:
        return getattr(errors, self.kind)(self.path, self.reason)


@dataclass(frozen=True)
class Crashed:
    """A bug in a worker, not bad media: the parent says so rather than hang."""

    message: str


@dataclass
class VideoFeatures:
    """Features of one video in one setting. `notes` say in words what else a user should know about them (sampling,
    downscaling, downmixing); a missing audio track and offline weights are fields, so that each reader words them
    for its own purpose, and `all_notes` says everything in words for files and logs."""

    path: str
    setting: str
    audio: np.ndarray | None  # (Da,) float32; None when the video has no usable audio track
    visual: np.ndarray  # (Dv,) float32
    duration: float  # seconds
    offline: bool  # True: seeded random weights, the features carry no meaning
    notes: list[str] = field(default_factory=list)
    audio_missing: str = ""  # why `audio` is None: "no audio track" or "audio unusable (...)"
    offline_sources: tuple[str, ...] = ()  # each offline backbone described, when `offline`
    visual_units: tuple[int, int] = (0, 0)  # (used, available) C3D clips; CLIP: (frames, frames)
    audio_units: tuple[int, int] = (0, 0)  # (used, available) 0.96 s examples

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def all_notes(self) -> list[str]:
        missing = [f"{self.audio_missing}: visual-only features"] if self.audio_missing else []
        return [*self.notes, *missing, *self.offline_sources]

    @property
    def sampled(self) -> bool:
        """Whether a cost cap (clips, examples) dropped part of the video."""
        return self.visual_units[0] < self.visual_units[1] or self.audio_units[0] < self.audio_units[1]


# ---------------------------------------------------------------------------------------------
# The CPU half


def video_inputs(path: str | Path, options: ExtractOptions, chunk: int = CPU_BATCH) -> Iterator[Chunk]:
    """Decode one video into network inputs: a Plan, VisualChunks of at most `chunk` C3D clips (CLIP: one chunk
    of every frame), then the VideoInfo. Raises a MediaError."""
    spec = get_setting(options.setting)
    video = open_video(path, options.limits)
    notes = []
    if video.downscaled:
        notes.append(
            f"frames decoded at {video.decode_width}x{video.decode_height} (from {video.width}x{video.height}) to bound memory"
        )
    if spec.visual_backbone == "c3d":
        visual_units = yield from c3d_inputs(video, options, chunk, notes)
    else:
        indices = video.uniform_indices(options.frames)
        yield Plan(len(indices))
        yield VisualChunk(video.frames(indices))  # (n, H, W, 3) uint8
        notes.append(f"visual: CLIP on {len(indices)} frames spread evenly over {video.duration_s:.1f} s")
        visual_units = (len(indices), len(indices))
    examples, audio_units, audio_notes, missing = audio_inputs(video.path, options)
    yield VideoInfo(
        str(video.path), video.duration_s, examples, notes + audio_notes, missing, visual_units, audio_units
    )


def c3d_inputs(video, options: ExtractOptions, chunk: int, notes: list[str]):
    """Yields the Plan and the VisualChunks of C3D clips (one clip decoded at a time); returns (used, available)
    clips. A cap that drops clips adds a note."""
    sequence, _ = benchmark_frames(video.starts, video.duration_s)  # (K,) native frame of each 25 fps frame
    total = clip_count(len(sequence))
    chosen = uniform_subset(total, options.max_clips or total)
    if len(sequence) < CLIP_FRAMES:  # what C3D saw is mostly padding: the features say little
        notes.append(
            f"visual: the video is {len(sequence)} frame(s) long at {BENCHMARK_FPS} fps ({video.duration_s:.2f} s), "
            f"shorter than one {CLIP_FRAMES}-frame C3D clip: the clip was padded with blank frames"
        )
    if len(chosen) < total:
        notes.append(
            f"visual: C3D on {len(chosen)} of {total} 16-frame clips at {BENCHMARK_FPS} fps, spread evenly "
            f"(cap: {options.max_clips} clips)"
        )
    yield Plan(len(chosen))
    for start in range(0, len(chosen), chunk):
        clips = [clip_tensor(c3d_clip_frames(video, sequence, c)) for c in chosen[start : start + chunk]]
        yield VisualChunk(np.stack([c.numpy() for c in clips]))  # (b, 3, 16, 112, 112)
    return len(chosen), total


def c3d_clip_frames(video, sequence: np.ndarray, clip: int) -> np.ndarray:
    """(<=16, h, w, 3) frames of clip `clip` of the 25 fps `sequence` (native indices, repeated below 25 fps);
    each distinct native frame is decoded once."""
    unique, inverse = np.unique(sequence[clip_frame_indices(len(sequence), clip)], return_inverse=True)
    return video.frames(unique)[inverse]


def audio_inputs(path: Path, options: ExtractOptions):
    """(m, 96, 64) log-mel examples or None, (used, available) examples, notes, why audio is missing ("" when it
    is not). A missing, undecodable or damaged audio track leaves the video visual-only."""
    try:
        audio = read_audio(path, options.limits)
    except (NoAudioTrackError, UnsupportedCodecError, CorruptMediaError) as e:
        reason = "no audio track" if isinstance(e, NoAudioTrackError) else f"audio unusable ({type(e).__name__})"
        return None, (0, 0), [], reason
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
    return log_mel_examples(samples, chosen), (len(chosen), total), notes, ""


# ---------------------------------------------------------------------------------------------
# The network half


class Networks:
    """The visual and audio backbones of a feature setting on one device, run on batches. Nothing here changes
    after it is built, so any number of threads may run videos through one instance at once."""

    def __init__(
        self,
        setting: str,
        weights: str = NetworkOptions.weights,
        device=NetworkOptions.device,
        precision: str = NetworkOptions.precision,
    ):
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

    def batch_size(self, batch: int | None = DEFAULT_BATCH) -> int:
        """`batch`, or by default CPU_BATCH on a CPU and GPU_BATCH on a GPU."""
        return batch or (CPU_BATCH if self.device.type == "cpu" else GPU_BATCH)

    def autocast(self):
        if self.precision == "bf16":  # torch's autocast state is per thread
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def visual(self, inputs: np.ndarray) -> np.ndarray:
        """C3D fc7 of clips (b, 3, 16, 112, 112), or CLIP embeddings of frames (n, H, W, 3): (b, Dv) float32."""
        if self.visual_bb.name != "c3d":
            return embed_frames(self.visual_bb.model, inputs, self.device)
        with torch.inference_mode(), self.autocast():
            out = self.visual_bb.model(torch.from_numpy(inputs).to(self.device))  # (b, 4096)
        return out.float().cpu().numpy()

    def audio(self, examples: np.ndarray, batch: int = 32) -> np.ndarray:
        """The PCA'd, 8-bit quantised VGGish embeddings of log-mel examples (m, 96, 64): (m, 128) in 0..255."""
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

    @property
    def done(self) -> int:
        return sum(len(o) for o in self.outputs)

    def finish(self, info: VideoInfo, networks: Networks) -> VideoFeatures:
        visual = np.concatenate(self.outputs).mean(axis=0).astype(np.float32)  # (Dv,)
        audio = None if info.examples is None else networks.audio(info.examples).mean(axis=0).astype(np.float32)
        return VideoFeatures(
            path=info.path,
            setting=networks.setting,
            audio=audio,
            visual=visual,
            duration=info.duration,
            offline=networks.offline,
            notes=list(info.notes),
            audio_missing=info.audio_missing,
            offline_sources=tuple(bb.source for bb in (networks.visual_bb, networks.audio_bb) if bb.offline),
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
    batch = networks.batch_size(batch)
    if batch < 1 or workers < 0:
        raise KdaError(f"`batch` must be >= 1 and `workers` >= 0, got {batch} and {workers}")
    if workers == 0:
        for key, path in paths.items():
            on_result(key, extract_in_process(path, options, networks, batch, progress))
        return
    collect(paths, options, networks, on_result, workers, batch)


def extract_in_process(path, options, networks, batch, progress=None) -> VideoFeatures | MediaError:
    """One video through both halves, here; every state is local, so threads may run this at once."""
    acc, planned = Accumulator(), 0
    try:
        for chunk in video_inputs(path, options, batch):
            match chunk:
                case Plan(units):
                    planned = units
                    if progress:
                        progress("visual", 0, planned)
                case VisualChunk(inputs):
                    acc.outputs.append(networks.visual(inputs))
                    if progress:
                        progress("visual", acc.done, planned)
                        if acc.done >= planned:  # the decoder goes on to the audio track: say so as it starts
                            progress("audio", 0, 1)
                case VideoInfo():
                    features = acc.finish(chunk, networks)
                    if progress:
                        progress("audio", 1, 1)
                    return features
    except MediaError as e:
        return e
    raise KdaError(f"{path}: the decoder stopped without finishing the video")  # unreachable by construction


def worker_loop(jobs, results, options: ExtractOptions, chunk: int) -> None:
    """A decoding process: takes (key, path) jobs until None, sends (key, Chunk | Failed | Crashed)."""
    while (job := jobs.get()) is not None:
        key, path = job
        try:
            for item in video_inputs(path, options, chunk):
                results.put((key, item))
        except MediaError as e:
            results.put((key, Failed(type(e).__name__, e.path, e.reason)))
        except Exception as e:  # a bug, not bad media: say so in the parent rather than hang it
            results.put((key, Crashed(f"{type(e).__name__}: {e}")))


class CrossVideoBatches:
    """The network half of `collect`: C3D clips of any video run in batches of `batch`; a video's features are
    made when its VideoInfo arrives."""

    def __init__(self, networks: Networks, batch: int):
        self.networks, self.batch = networks, batch
        self.pending: dict[str, Accumulator] = {}
        self.waiting: list[tuple[str, np.ndarray]] = []  # visual chunks not yet through the network

    def add(self, key: str, inputs: np.ndarray) -> None:
        acc = self.pending.setdefault(key, Accumulator())
        if self.networks.visual_bb.name != "c3d":  # CLIP frames: one video's frames are one batch
            acc.outputs.append(self.networks.visual(inputs))
            return
        self.waiting.append((key, inputs))
        if sum(len(c) for _, c in self.waiting) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.waiting:
            return
        outputs = self.networks.visual(np.concatenate([c for _, c in self.waiting]))  # one batch, several videos
        start = 0
        for key, chunk in self.waiting:
            self.pending[key].outputs.append(outputs[start : start + len(chunk)])
            start += len(chunk)
        self.waiting.clear()

    def finish(self, key: str, info: VideoInfo) -> VideoFeatures:
        self.flush()
        return self.pending.pop(key, Accumulator()).finish(info, self.networks)

    def drop(self, key: str) -> None:
        self.pending.pop(key, None)


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
    batches = CrossVideoBatches(networks, batch)
    try:
        remaining = len(paths)
        while remaining:
            try:
                key, item = results.get(timeout=WORKER_POLL_S)
            except queue_module.Empty:
                if not any(p.is_alive() for p in procs):
                    raise KdaError("every decoding worker stopped before the videos were done") from None
                continue
            match item:
                case Plan():
                    continue
                case VisualChunk(inputs):
                    batches.add(key, inputs)
                    continue
                case VideoInfo():
                    on_result(key, batches.finish(key, item))
                case Failed():
                    batches.drop(key)
                    on_result(key, item.error())
                case Crashed(message):
                    raise KdaError(f"extraction of {paths[key]} failed in a worker: {message}")
            remaining -= 1
    finally:
        for p in procs:
            p.kill()
            p.join(timeout=5)
