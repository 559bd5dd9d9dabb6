"""A labelled folder of videos -> an AVCA dataset root (`extract_dataset`) that `kda.benchmark.load_benchmark`
reads and `kda train` trains on: every video through one `VideoExtractor`, its result kept on disk as it is
done (a run resumes), then the class lists, split CSVs and feature files. Shards split the videos over several
runs (e.g. a job array) and a merge run writes the root from their parts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
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
from kda.media.c3d import BENCHMARK_FPS
from kda.media.errors import MediaError
from kda.media.extract import CACHE_DIR, VideoExtractor, cache_path, read_entry, write_entry
from kda.media.labels import LabelsError, assign, check_folders_filled, read_labels
from kda.media.pipeline import ExtractOptions, NetworkOptions
from kda.settings import FeatureSetting, get_setting

SHARDS_DIR = "shards"  # OUT/shards/K-of-N/: what `shard=(K, N)` writes; `merge` reads every part
PART_MANIFEST = "part.json"


@dataclass(frozen=True)
class DatasetOptions:
    """Everything `extract_dataset` does besides its inputs and output; `kda extract` shows these defaults."""

    dataset: str = "custom"  # the root's dataset name; pass the same to `kda train --dataset`
    extract: ExtractOptions = ExtractOptions()  # what each video gives (default: every C3D clip)
    network: NetworkOptions = NetworkOptions()  # weights, device, precision, batch
    workers: int = 0  # decoding processes; 0: decode in this process
    shard: tuple[int, int] | None = None  # (K, N): extract only part K of N, into OUT/shards/K-of-N
    merge: bool = False  # write the root from the shard parts in OUT (each video in exactly one)

    def params(self, spec: FeatureSetting) -> dict:
        """What a cached result must have been made with to be reused."""
        extract, network = self.extract, self.network
        params = {"setting": extract.setting, "weights": network.weights, "max_clips": extract.max_clips}
        params["max_examples"] = extract.max_examples
        params |= {"frames": extract.frames} if spec.visual_backbone != "c3d" else {}  # unused by C3D: keep entries
        params |= {"precision": network.precision} if network.precision != "fp32" else {}  # bf16 is not fp32
        if spec.visual_backbone == "c3d":
            params["c3d_fps"] = BENCHMARK_FPS  # results from before the 25 fps resampling are extracted again
        return params

    def caps(self, spec: FeatureSetting) -> str:
        """The caps in words, as the summary and extraction.json say them."""
        max_clips = self.extract.max_clips
        caps = f"{self.extract.frames} CLIP frames"
        if spec.visual_backbone == "c3d":
            caps = (
                "every C3D clip at 25 fps (benchmark-exact)"
                if max_clips is None
                else f"{max_clips} C3D clips (speed cap)"
            )
        return f"cap per video: {caps}, {self.extract.max_examples} audio examples"


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
    shard: tuple[int, int] | None = None  # (K, N) when only part K of N was extracted (no layout written yet)

    def line(self) -> str:
        written = self.videos - len(self.failed) - len(self.visual_only)
        where = (
            f"shard {self.shard[0]}/{self.shard[1]}: {written} of {self.videos} videos of this part in"
            if self.shard
            else f"{written} of {self.videos} videos written to"
        )
        parts = [
            f"{where} {self.root} ({self.setting} features, dataset {self.dataset!r})",
            f"{self.extracted} extracted, {self.reused} already there",
            f"{len(self.failed)} failed",
            f"{len(self.visual_only)} without audio left out",
            f"{self.sampled} sampled ({self.caps})",
        ]
        if self.offline:
            parts.append("OFFLINE weights: the features carry no meaning")
        if self.shard:
            parts.append("merge the parts with `merge` once every shard is done")
        return "; ".join(parts)


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise KdaError(f"shard {text!r}: expected K/N such as 1/4") from None
    if not 1 <= k <= n:
        raise KdaError(f"shard {text!r}: K must be between 1 and N")
    return k, n


def in_shard(filename: str, shard: tuple[int, int]) -> bool:
    """Deterministic and stable: a video's shard depends on its name alone, not on the labels' order or size."""
    k, n = shard
    return int(hashlib.sha256(filename.encode()).hexdigest()[:12], 16) % n == k - 1


def extract_dataset(
    videos_dir: str | Path,
    labels: str | Path,
    out: str | Path,
    options: DatasetOptions | None = None,
    *,
    log: Callable[[str], None] = print,
    show_progress: bool = True,
) -> ExtractSummary:
    """Extract every labelled video (reusing results already in `out`), then write the AVCA layout.

    `options.workers` processes decode while the networks run here. `options.shard=(K, N)` extracts only part K
    of N into OUT/shards/K-of-N (run the N parts anywhere, e.g. as a job array), and `options.merge` then checks
    that every video is in exactly one part and writes the layout. A video that cannot be used is reported
    through `log` and skipped; it never stops the run. Raises `LabelsError` for a bad labels file, or when
    failures leave a feature folder without videos.
    """
    options = options or DatasetOptions()
    spec = get_setting(options.extract.setting).require_extractor()
    dataset_prefix(options.dataset)  # a bad dataset name fails now, not after the extraction
    videos = read_labels(labels)
    assignment = assign(videos)  # checked before any heavy work
    out, videos_dir = Path(out), Path(videos_dir)
    check_output_root(out)
    options.extract.check()
    summary = ExtractSummary(
        out, options.extract.setting, options.dataset, len(videos), caps=options.caps(spec), shard=options.shard
    )
    if options.merge:
        results = merge_parts(out, videos_dir, videos, options.params(spec), summary)
    else:
        results = extract_shard(out, videos_dir, videos, options, summary, log, show_progress)
        if options.shard is not None:
            return summary
    for filename, cached in results.items():
        summary.offline |= bool(cached["offline"])
        summary.sampled += bool(cached["sampled"])
        if cached["audio"] is None:
            summary.visual_only.append(filename)
            log(f"left out {filename}: no usable audio track (the AVCA layout needs both modalities)")
    complete = {name: r for name, r in results.items() if r["audio"] is not None}
    write_layout(out, spec, options.dataset, videos, assignment, complete, summary)
    return summary


def extract_shard(out: Path, videos_dir: Path, videos, options: DatasetOptions, summary, log, show_progress) -> dict:
    """filename -> cached result of the videos of this run (all of them, or those of `options.shard`, whose part
    then gets its manifest)."""
    shard = options.shard
    part = out if shard is None else out / SHARDS_DIR / f"{shard[0]}-of-{shard[1]}"
    todo = [v for v in videos if shard is None or in_shard(v.filename, shard)]
    summary.videos = len(todo)
    extractor = VideoExtractor(options.extract, options.network)
    extractor.build()  # weights that cannot be had fail now, once, before any video
    params = options.params(get_setting(options.extract.setting))
    results = extract_part(part, videos_dir, todo, params, extractor, options.workers, summary, log, show_progress)
    if shard is not None:
        manifest = {"shard": list(shard), "videos": [v.filename for v in todo], "failed": summary.failed}
        (part / PART_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return results


def extract_part(part, videos_dir, videos, params, extractor: VideoExtractor, workers, summary, log, show_progress):
    """filename -> cached result for `videos`, extracting those not in `part` yet (each written as it is done)."""
    setting = extractor.options.setting
    results, todo = {}, {}
    for video in videos:
        cached = read_entry(cache_path(part, setting, video.filename), videos_dir / video.filename, params)
        if cached is None:
            todo[video.filename] = videos_dir / video.filename
        else:
            results[video.filename] = cached
            summary.reused += 1
    bar = tqdm(total=len(todo), desc="extract", unit="video", disable=not show_progress)

    def on_result(filename: str, features) -> None:
        bar.update()
        if isinstance(features, MediaError):
            summary.failed[filename] = str(features)
            log(f"skipped {filename}: {features}")
            return
        entry = cache_path(part, setting, filename)
        results[filename] = write_entry(entry, todo[filename], params, features)
        summary.extracted += 1

    try:
        extractor.extract_many(todo, on_result, workers=workers)
    finally:
        bar.close()
    return results


def merge_parts(out: Path, videos_dir: Path, videos, params: dict, summary: ExtractSummary) -> dict:
    """Every video's result from the shard parts in OUT/shards/: each must be in exactly one part (or have
    failed there); anything else is an error naming the videos and what to do."""
    parts = sorted(p for p in (out / SHARDS_DIR).glob("*-of-*") if p.is_dir())
    if not parts:
        raise LabelsError(f"nothing to merge: no shard parts in {out / SHARDS_DIR}; extract with `shard` K/N first")
    found: dict[str, list[tuple[str, dict]]] = {}
    for part in parts:
        manifest = json.loads((part / PART_MANIFEST).read_text()) if (part / PART_MANIFEST).exists() else {}
        summary.failed.update(manifest.get("failed", {}))
        for video in videos:
            entry = cache_path(part, summary.setting, video.filename)
            cached = read_entry(entry, videos_dir / video.filename, params, require_source=False)
            if cached is not None:
                found.setdefault(video.filename, []).append((part.name, cached))
    twice = {name: [p for p, _ in hits] for name, hits in found.items() if len(hits) > 1}
    if twice:
        name, where = next(iter(twice.items()))
        raise LabelsError(
            f"{len(twice)} videos are in more than one part (e.g. {name} in {', '.join(where)}): the parts come from "
            f"different shard counts; delete the stale parts under {out / SHARDS_DIR} and merge again"
        )
    missing = [v.filename for v in videos if v.filename not in found and v.filename not in summary.failed]
    if missing:
        raise LabelsError(
            f"{len(missing)} videos are in no part (e.g. {missing[0]}): run the shards that hold them again "
            "(a shard resumes where it stopped), then merge"
        )
    summary.reused = len(found)
    return {name: hits[0][1] for name, hits in found.items()}


def sampling_record(spec: FeatureSetting, summary: ExtractSummary) -> dict:
    """Clip sampling in the provenance: whether a speed cap was used (benchmark-exact features use every C3D
    clip of the video at 25 fps) and on how many videos a cap dropped clips or examples."""
    record = {"caps": summary.caps, "videos_sampled": summary.sampled}
    if spec.visual_backbone == "c3d":
        record |= {"c3d_fps": BENCHMARK_FPS, "every_clip": "speed cap" not in summary.caps}
    return record


def check_output_root(out: Path) -> None:
    """`out` must be new, empty, or made by an earlier `kda extract` (whose feature files are replaced)."""
    if out.exists() and not out.is_dir():
        raise LabelsError(f"output {out} is a file; give a folder")
    ours = any((out / name).exists() for name in (EXTRACTION_MANIFEST, CACHE_DIR, SHARDS_DIR))
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise LabelsError(f"{out} already holds files not written by `kda extract`; choose a new or empty folder")


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
        "sampling": sampling_record(spec, summary),
        "roles": assignment.roles,
        "failed": summary.failed,
        "visual_only": summary.visual_only,
        "notes": {name: results[name]["notes"] for name in sorted(results) if results[name]["notes"]},
    }
    (out / EXTRACTION_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
