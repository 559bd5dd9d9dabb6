"""Video in, features out: `VideoExtractor` holds a feature setting's options and its networks, built once and
shared by every video (from any number of threads); `extract_video` is one video through a new one. The
per-video result entries at the end are what make `kda.media.dataset` resumable.

C3D sees the video as the benchmark did, converted to 25 fps (`kda.media.c3d.benchmark_frames`), and by
default every 16-frame clip (`max_clips=None`, benchmark-exact). Caps are speed options: `max_clips` C3D clips
(or `frames` CLIP frames) and `max_examples` VGGish examples per video, spread evenly; whenever sampling drops
anything a note says so, and `kda.media.dataset` records the caps in extraction.json ("sampling").
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np

from kda.media.errors import MediaError
from kda.media.pipeline import (
    ExtractOptions,
    NetworkOptions,
    Networks,
    Progress,
    VideoFeatures,
    extract_in_process,
    extract_many,
)

DEFAULT_MAX_CLIPS = 16  # a speed cap for interactive use (the app); extraction defaults to every clip
CACHE_DIR = ".kda-extract"  # per-video results inside the output root: what makes a run resumable


class VideoExtractor:
    """One feature setting's extractor: what each video gives (`options`), how the networks run (`network`), and
    the networks themselves, built on first use. Building is the one step that must not run twice at once
    (weights take seconds to minutes to load, and a GPU copy of each); extractions then share the networks,
    which nothing changes, so threads may extract videos through one extractor at the same time."""

    def __init__(self, options: ExtractOptions | None = None, network: NetworkOptions | None = None):
        self.options = options or ExtractOptions()
        self.network = network or NetworkOptions()
        self.built: Networks | None = None
        self.build_lock = threading.Lock()

    @classmethod
    def of(cls, setting: str = ExtractOptions.setting, **options) -> VideoExtractor:
        """An extractor from keyword options: any field of `ExtractOptions` or of `NetworkOptions`."""
        network = {f.name for f in fields(NetworkOptions)}
        return cls(
            ExtractOptions(setting, **{k: v for k, v in options.items() if k not in network}),
            NetworkOptions(**{k: v for k, v in options.items() if k in network}),
        )

    def build(self) -> Networks:
        """The backbones on their device: built by the first call (after checking the options), the same object
        for every later one. Weights that cannot be had raise here."""
        if self.built is None:
            with self.build_lock:
                if self.built is None:  # another thread may have built them while this one waited
                    self.options.check()
                    net = self.network
                    self.built = Networks(self.options.setting, net.weights, net.device, net.precision)
        return self.built

    def extract(self, path: str | Path, progress: Progress | None = None) -> VideoFeatures:
        """Features of one video, in memory. Raises a `MediaError` subclass for a file that cannot be used; a
        video without (usable) audio gives `audio=None` and a note (visual-only)."""
        networks = self.build()
        batch = networks.batch_size(self.network.batch)
        result = extract_in_process(path, self.options, networks, batch, progress)
        if isinstance(result, MediaError):
            raise result
        return result

    def extract_many(self, paths: dict[str, Path], on_result: Callable[[str, object], None], workers: int = 0) -> None:
        """`kda.media.pipeline.extract_many` through this extractor's networks: `workers` decoding processes."""
        extract_many(paths, self.options, self.build(), on_result, workers=workers, batch=self.network.batch)


def extract_video(
    path: str | Path, setting: str = ExtractOptions.setting, *, progress: Progress | None = None, **options
) -> VideoFeatures:
    """Features of one video, in memory, through a new `VideoExtractor` (keep one to extract many videos).
    `options`: any field of `ExtractOptions` (max_clips, max_examples, frames, limits) or of `NetworkOptions`
    (weights, device, precision, batch), with their defaults (`max_clips=None`: every clip)."""
    return VideoExtractor.of(setting, **options).extract(path, progress)


# ---------------------------------------------------------------------------------------------
# Per-video results on disk: one entry per video, valid while its source file and parameters are unchanged


def cache_path(out: Path, setting: str, filename: str) -> Path:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(filename).name)[:80]
    return out / CACHE_DIR / setting / f"{stem}-{hashlib.sha256(filename.encode()).hexdigest()[:12]}.npz"


def source_stamp(source: Path) -> str:
    stat = source.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def read_entry(entry: Path, source: Path, params: dict, require_source: bool = True) -> dict | None:
    """A cached result, if it was made from this very file (when it is here; a merge may run where the videos
    are not) with these parameters."""
    if not entry.exists() or (require_source and not source.exists()):
        return None
    try:
        with np.load(entry, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            stale = source.exists() and meta["source"] != source_stamp(source)
            if meta["params"] != params or stale:
                return None
            audio = data["audio"] if meta["has_audio"] else None
            return {"audio": audio, "visual": data["visual"], **meta}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # a damaged or half-written entry: redo it
        return None


def write_entry(entry: Path, source: Path, params: dict, features: VideoFeatures) -> dict:
    meta = {
        "params": params,
        "source": source_stamp(source),
        "has_audio": features.has_audio,
        "offline": features.offline,
        "sampled": features.sampled,
        "notes": features.all_notes,
    }
    entry.parent.mkdir(parents=True, exist_ok=True)
    part = entry.with_name(entry.name + ".part.npz")
    audio = {"audio": features.audio} if features.has_audio else {}
    np.savez(part, **audio, visual=features.visual, meta=np.array(json.dumps(meta)))
    os.replace(part, entry)  # atomic: an interrupted run never leaves a half entry under the real name
    return {"audio": features.audio, "visual": features.visual, **meta}
