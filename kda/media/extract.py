"""Video in, features out: one video -> `VideoFeatures` (`extract_video`), and a labelled folder of videos
-> an AVCA dataset root (`extract_dataset`) that `kda.benchmark.load_benchmark` reads and `kda train` trains on.

Cost is bounded by sampling: at most `max_clips` C3D clips (or `frames` CLIP frames) and `max_examples`
VGGish examples per video, spread evenly over it; whenever sampling drops anything, a note says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kda.benchmark import (
    EXTRACTION_MANIFEST,
    FEATURE_FOLDERS,
    dataset_prefix,
    write_class_split,
    write_feature_file,
    write_split_csv,
)
from kda.errors import KdaError
from kda.media.backbones import Backbone, load_backbone
from kda.media.c3d import clip_count, clip_frame_indices, clip_tensor
from kda.media.clip_frames import embed_frames
from kda.media.decode import DEFAULT_LIMITS, Limits, Video, open_video, read_audio, uniform_subset
from kda.media.errors import CorruptMediaError, MediaError, NoAudioTrackError, UnsupportedCodecError
from kda.media.labels import LabelsError, assign, check_folders_filled, read_labels
from kda.media.vggish import EXAMPLE_SAMPLES, log_mel_examples, num_examples
from kda.settings import FeatureSetting, get_setting

DEFAULT_MAX_CLIPS = 16  # C3D clips per video: ~2.3 s each on 2 CPU cores, so <= ~40 s per video
DEFAULT_MAX_EXAMPLES = 64  # VGGish examples (0.96 s each) per video: ~75 ms each on 2 CPU cores
DEFAULT_FRAMES = 8  # CLIP frames per video, evenly spaced in time
VGGISH_BATCH = 32  # examples per forward pass (bounds memory)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class VideoFeatures:
    """Features of one video in one setting; `notes` say in words what a user should know about them."""

    path: str
    setting: str
    audio: np.ndarray | None  # (Da,) float32; None when the video has no usable audio track
    visual: np.ndarray  # (Dv,) float32
    duration: float  # seconds
    offline: bool  # True: seeded random weights, the features carry no meaning
    notes: list[str] = field(default_factory=list)
    visual_units: tuple[int, int] = (0, 0)  # (used, available) C3D clips; CLIP: (frames, frames)
    audio_units: tuple[int, int] = (0, 0)  # (used, available) 0.96 s examples

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def sampled(self) -> bool:
        """Whether a cost cap (clips, examples) dropped part of the video."""
        return self.visual_units[0] < self.visual_units[1] or self.audio_units[0] < self.audio_units[1]


def extract_video(
    path: str | Path,
    setting: str = "cls",
    *,
    weights: str = "pretrained",
    max_clips: int = DEFAULT_MAX_CLIPS,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    frames: int = DEFAULT_FRAMES,
    limits: Limits = DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> VideoFeatures:
    """Features of one video. Raises a `MediaError` subclass for a file that cannot be used; a video
    without (usable) audio gives `audio=None` and a note (visual-only)."""
    if min(max_clips, max_examples, frames) < 1:
        raise KdaError(
            f"`max_clips`, `max_examples` and `frames` must be >= 1, got {max_clips}, {max_examples}, {frames}"
        )
    spec = get_setting(setting).require_extractor()
    video = open_video(path, limits)
    visual_bb, audio_bb = load_backbone(spec.visual_backbone, weights), load_backbone(spec.audio_backbone, weights)
    visual, visual_units, notes = embed_visual(spec, visual_bb, video, max_clips, frames, progress)
    audio, audio_units, audio_notes = embed_audio(audio_bb, video.path, max_examples, limits, progress)
    notes += audio_notes
    for bb in (visual_bb, audio_bb):
        if bb.offline:
            notes.append(bb.source)
    return VideoFeatures(
        path=str(video.path),
        setting=setting,
        audio=audio,
        visual=visual,
        duration=video.duration_s,
        offline=visual_bb.offline or audio_bb.offline,
        notes=notes,
        visual_units=visual_units,
        audio_units=audio_units,
    )


def embed_visual(spec: FeatureSetting, backbone: Backbone, video: Video, max_clips, frames, progress):
    """(Dv,) visual feature, (used, available) units, notes."""
    notes = []
    if video.downscaled:
        notes.append(
            f"frames decoded at {video.decode_width}x{video.decode_height} (from {video.width}x{video.height}) to bound memory"
        )
    if spec.visual_backbone == "c3d":
        feature, used, total = c3d_feature(backbone.model, video, max_clips, progress)
        if used < total:
            notes.append(f"visual: C3D on {used} of {total} 16-frame clips, spread evenly (cap: {max_clips} clips)")
    else:
        feature, used, total = clip_feature(backbone.model, video, frames, progress)
        notes.append(f"visual: CLIP on {used} frames spread evenly over {video.duration_s:.1f} s")
    return feature, (used, total), notes


def c3d_feature(model, video: Video, max_clips: int, progress: Progress | None):
    """Mean fc7 over consecutive 16-frame clips (at most `max_clips` of them, spread evenly)."""

    total = clip_count(video.num_frames)
    chosen = uniform_subset(total, max_clips)
    features = []
    for done, clip in enumerate(chosen, start=1):
        frames = video.frames(clip_frame_indices(video.num_frames, clip))  # (<=16, h, w, 3), one clip at a time
        with torch.inference_mode():
            features.append(model(clip_tensor(frames)[None])[0].numpy())  # (4096,)
        if progress:
            progress("visual", done, len(chosen))
    return np.mean(features, axis=0).astype(np.float32), len(chosen), total


def clip_feature(encoder, video: Video, frames: int, progress: Progress | None):
    """Mean of the unit-length CLIP embeddings of `frames` frames spread evenly in time (a sample by
    design, so never counted as capped)."""

    indices = video.uniform_indices(frames)
    embeddings = embed_frames(encoder, video.frames(indices))  # (n, 512)
    if progress:
        progress("visual", 1, 1)
    return embeddings.mean(axis=0).astype(np.float32), len(indices), len(indices)


def embed_audio(backbone: Backbone, path: Path, max_examples: int, limits: Limits, progress: Progress | None):
    """(128,) audio feature or None, (used, available) examples, notes. A missing, undecodable or
    damaged audio track leaves the video visual-only, said in a note."""

    try:
        audio = read_audio(path, limits)
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
    chosen = uniform_subset(total, max_examples)
    if len(chosen) < total:
        notes.append(f"audio: VGGish on {len(chosen)} of {total} 0.96 s examples, spread evenly (cap: {max_examples})")
    feature = vggish_feature(backbone, samples, chosen)
    if progress:
        progress("audio", 1, 1)
    return feature, (len(chosen), total), notes


def vggish_feature(backbone: Backbone, samples: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Mean over the chosen examples of the PCA'd, 8-bit quantised VGGish embeddings: (128,) in 0..255."""

    quantised = []
    for start in range(0, len(chosen), VGGISH_BATCH):
        examples = torch.from_numpy(log_mel_examples(samples, chosen[start : start + VGGISH_BATCH]))  # (b, 96, 64)
        with torch.inference_mode():
            quantised.append(backbone.extra(backbone.model(examples[:, None])))  # (b, 128)
    return torch.cat(quantised).mean(dim=0).numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------
# A labelled folder of videos -> an AVCA dataset root

CACHE_DIR = ".kda-extract"  # per-video results inside the output root: what makes a run resumable
MANIFEST = EXTRACTION_MANIFEST


@dataclass
class ExtractSummary:
    root: Path
    setting: str
    dataset: str
    videos: int
    extracted: int = 0  # this run
    reused: int = 0  # already in the output (resumed)
    sampled: int = 0  # videos whose clips or examples were capped
    failed: dict[str, str] = field(default_factory=dict)  # filename -> reason
    visual_only: list[str] = field(default_factory=list)  # no usable audio: left out of the layout
    offline: bool = False
    caps: str = ""

    def line(self) -> str:
        written = self.videos - len(self.failed) - len(self.visual_only)
        parts = [
            f"{written} of {self.videos} videos written to {self.root} ({self.setting} features, dataset {self.dataset!r})",
            f"{self.extracted} extracted, {self.reused} already there",
            f"{len(self.failed)} failed",
            f"{len(self.visual_only)} without audio left out",
            f"{self.sampled} sampled ({self.caps})",
        ]
        if self.offline:
            parts.append("OFFLINE weights: the features carry no meaning")
        return "; ".join(parts)


def extract_dataset(
    videos_dir: str | Path,
    labels: str | Path,
    out: str | Path,
    *,
    setting: str = "cls",
    dataset: str = "custom",
    weights: str = "pretrained",
    max_clips: int = DEFAULT_MAX_CLIPS,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    frames: int = DEFAULT_FRAMES,
    limits: Limits = DEFAULT_LIMITS,
    log: Callable[[str], None] = print,
    show_progress: bool = True,
) -> ExtractSummary:
    """Extract every labelled video (reusing results already in `out`), then write the AVCA layout.

    A video that cannot be used is reported through `log` and skipped; it never stops the run. Raises
    `LabelsError` for a bad labels file, or when failures leave a feature folder without videos.
    """

    spec = get_setting(setting).require_extractor()
    dataset_prefix(dataset)  # a bad dataset name fails now, not after the extraction
    videos = read_labels(labels)
    assignment = assign(videos)  # checked before any heavy work
    out, videos_dir = Path(out), Path(videos_dir)
    check_output_root(out)
    for backbone in (spec.visual_backbone, spec.audio_backbone):
        load_backbone(backbone, weights)  # weights that cannot be had fail the run now, once
    options = {"weights": weights, "max_clips": max_clips, "max_examples": max_examples, "frames": frames}
    params = {"setting": setting, **options}
    if spec.visual_backbone == "c3d":
        del params["frames"]  # unused by C3D: changing it must not invalidate earlier results
        caps = f"{max_clips} C3D clips"
    else:
        caps = f"{frames} CLIP frames"
    summary = ExtractSummary(
        out, setting, dataset, len(videos), caps=f"cap per video: {caps}, {max_examples} audio examples"
    )
    results = {}
    for video in tqdm(videos, desc="extract", unit="video", disable=not show_progress):
        source = videos_dir / video.filename
        entry = cache_path(out, setting, video.filename)
        cached = read_entry(entry, source, params)
        if cached is not None:
            summary.reused += 1
        else:
            try:
                features = extract_video(source, setting, limits=limits, **options)
            except MediaError as e:
                summary.failed[video.filename] = str(e)
                log(f"skipped {video.filename}: {e}")
                continue
            cached = write_entry(entry, source, params, features)
            summary.extracted += 1
        summary.offline |= bool(cached["offline"])
        summary.sampled += bool(cached["sampled"])
        if cached["audio"] is None:
            summary.visual_only.append(video.filename)
            log(f"left out {video.filename}: no usable audio track (the AVCA layout needs both modalities)")
        else:
            results[video.filename] = cached
    write_layout(out, spec, dataset, videos, assignment, results, summary)
    return summary


def check_output_root(out: Path) -> None:
    """`out` must be new, empty, or made by an earlier `kda extract` (whose feature files are replaced)."""
    if out.exists() and not out.is_dir():
        raise LabelsError(f"output {out} is a file; give a folder")
    ours = (out / MANIFEST).exists() or (out / CACHE_DIR).exists()
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise LabelsError(f"{out} already holds files not written by `kda extract`; choose a new or empty folder")


def cache_path(out: Path, setting: str, filename: str) -> Path:
    import hashlib

    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(filename).name)[:80]
    return out / CACHE_DIR / setting / f"{stem}-{hashlib.sha256(filename.encode()).hexdigest()[:12]}.npz"


def source_stamp(source: Path) -> str:
    stat = source.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def read_entry(entry: Path, source: Path, params: dict) -> dict | None:
    """A cached result, if it was made from this very file with these parameters."""
    if not entry.exists() or not source.exists():
        return None
    try:
        with np.load(entry, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta["params"] != params or meta["source"] != source_stamp(source):
                return None
            audio = data["audio"] if meta["has_audio"] else None
            return {"audio": audio, "visual": data["visual"], **meta}
    except (OSError, ValueError, KeyError):  # a half-written entry from an interrupted run: redo it
        return None


def write_entry(entry: Path, source: Path, params: dict, features: VideoFeatures) -> dict:
    meta = {
        "params": params,
        "source": source_stamp(source),
        "has_audio": features.has_audio,
        "offline": features.offline,
        "sampled": features.sampled,
        "notes": features.notes,
    }
    entry.parent.mkdir(parents=True, exist_ok=True)
    part = entry.with_name(entry.name + ".part.npz")
    audio = features.audio if features.has_audio else np.zeros(0, np.float32)
    np.savez(part, audio=audio, visual=features.visual, meta=np.array(json.dumps(meta)))
    os.replace(part, entry)  # atomic: an interrupted run never leaves a half entry under the real name
    return {"audio": features.audio, "visual": features.visual, **meta}


def write_layout(out: Path, spec: FeatureSetting, dataset, videos, assignment, results: dict, summary) -> None:
    """Class lists, split CSVs and one HDF5 file per class, modality and folder (kda.benchmark layout)."""

    kept = [v for v in videos if v.filename in results]
    try:
        check_folders_filled(assignment, lost={v.filename for v in videos} - set(results))
    except LabelsError as e:
        raise LabelsError(
            f"{e}. {len(summary.failed)} videos failed and {len(summary.visual_only)} have no audio; fix or replace "
            "them and run again (videos already extracted are kept)"
        ) from e
    for stale in (out / "features" / f"{spec.name}_features").glob("*/*/*.h5"):  # from an earlier split
        stale.unlink()
    classes = sorted(assignment.roles)
    write_class_split(out, dataset, spec.name, classes, {c: c for c in classes}, assignment.split_lists(spec.name))
    for split, rows in assignment.split_rows(kept).items():
        write_split_csv(out, spec.name, split, rows, classes)
    for folder in FEATURE_FOLDERS:
        for label in classes:
            names = [v.filename for v in kept if v.label == label and assignment.folders[v.filename] == folder]
            if not names:
                continue
            audio = np.stack([results[n]["audio"] for n in names])  # (N, Da)
            visual = np.stack([results[n]["visual"] for n in names])  # (N, Dv)
            write_feature_file(out, spec.name, "audio", folder, label, audio, names)
            write_feature_file(out, spec.name, "video", folder, label, visual, names)
    manifest = {
        "dataset": dataset,
        "setting": spec.name,
        "audio_backbone": spec.audio_backbone,
        "visual_backbone": spec.visual_backbone,
        "offline": summary.offline,
        "caps": summary.caps,
        "roles": assignment.roles,
        "failed": summary.failed,
        "visual_only": summary.visual_only,
        "notes": {name: results[name]["notes"] for name in sorted(results) if results[name]["notes"]},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
