"""Extraction speed on a 10 s 360p clip (H.264 + AAC stereo, made by ffmpeg): decoding, building the
offline backbones, and features per setting, cold (first call in the process) and warm.

Prints seconds per step and records (bench/record.py) the features of each setting against a same-run baseline;
asserts nothing. Needs ffmpeg. Run: python bench/bench_extract.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from record import figure  # noqa: E402

from kda.media import extract_video, load_backbone, open_video, read_audio  # noqa: E402

SECONDS, SIZE, FPS = 10, "640x360", 25


def make_clip(folder: Path) -> Path:
    path = folder / "clip_360p.mp4"
    args = [
        *["-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate={FPS}:duration={SECONDS}"],
        *["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={SECONDS}"],
        *["-ac", "2", "-c:v", "libx264", "-preset", "fast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ]
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(path)], check=True)
    return path


def timed(label: str, fn):
    """fn's result; its seconds in `timed.seconds`."""
    start = time.perf_counter()
    result = fn()
    timed.seconds = time.perf_counter() - start
    print(f"{label:<58} {timed.seconds:7.2f} s")
    return result


def main() -> None:
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is not installed; nothing measured")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = make_clip(Path(tmp))
        print(f"{SECONDS} s {SIZE} clip at {FPS} fps, CPU threads: {__import__('torch').get_num_threads()}")
        video = timed("open + probe", lambda: open_video(path))
        timed("decode 16 consecutive frames", lambda: video.frames(range(16)))
        timed("decode 8 frames spread evenly", lambda: video.frames(video.uniform_indices(8)))
        eight = timed.seconds
        timed("audio to mono 16 kHz (cold: resampy's JIT compile)", lambda: read_audio(path))
        audio_cold = timed.seconds
        timed("audio to mono 16 kHz (warm)", lambda: read_audio(path))
        figure("audio to mono 16 kHz, 10 s, warm", timed.seconds, "s", baseline=audio_cold, baseline_what="cold")
        for name in ("vggish", "c3d", "clip-vit-b-32"):
            timed(f"build offline {name}", lambda name=name: load_backbone(name, "offline"))
        timed("features, clip setting (8 frames, all audio)", lambda: extract_video(path, "clip", weights="offline"))
        figure("features, clip setting (8 frames + audio)", timed.seconds, "s", baseline=eight,
               baseline_what="decoding its 8 frames")  # fmt: skip
        timed(
            "features, cls setting, 4 clips (cap) + all audio",
            lambda: extract_video(path, "cls", weights="offline", max_clips=4),
        )
        capped = timed.seconds
        features = timed(
            "features, cls setting, every clip (16) + all audio", lambda: extract_video(path, "cls", weights="offline")
        )
        figure("features, cls setting, every C3D clip (16) + audio", timed.seconds, "s", baseline=capped,
               baseline_what="4 clips (cap)")  # fmt: skip
        print(
            f"cls: {features.visual_units[0]} clips, {features.audio_units[0]} audio examples; notes: {features.notes}"
        )


if __name__ == "__main__":
    main()
