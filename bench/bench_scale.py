"""Extraction at scale on this machine (offline weights, CPU):

* throughput (videos/s and C3D clips/s) of `extract_many` with 0 workers (today's one-video-at-a-time path,
  in this process), 1 and 2 decoding workers, on the same 8 short 360p videos, as ratios to the first;
* decode-only throughput of the same videos (what a GPU's extraction is bound by);
* peak RSS of extracting a 10-minute 1080p video in a fresh process (frames are decoded one clip at a time;
  the C3D cap is stated), against the peak RSS of a process that only loads the backbones.

Prints figures and ratios, the throughputs through bench/record.py; asserts nothing. Needs ffmpeg. Run: python bench/bench_scale.py [--quick]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from record import figure  # noqa: E402

from kda.media.pipeline import ExtractOptions, Networks, extract_many, video_inputs  # noqa: E402

VIDEOS, SECONDS = 8, 4  # short 360p videos for throughput
LONG_MINUTES = 10
CLIPS = 4  # C3D clips per short video (cap), so a run takes about a minute on 2 cores


def ffmpeg(args: list[str], path: Path) -> Path:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(path)], check=True)
    return path


def make_video(path: Path, size: str, seconds: float, seed: int) -> Path:
    return ffmpeg(
        [
            *["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}"],
            *["-f", "lavfi", "-i", f"sine=frequency={300 + 40 * seed}:sample_rate=44100:duration={seconds}"],
            *["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"],
        ],
        path,
    )


def throughput(paths: dict, options: ExtractOptions, networks: Networks) -> None:
    clips = 0

    def count(_key, features) -> None:
        nonlocal clips
        clips += features.visual_units[0]

    rates = {}
    for workers in (0, 1, 2):
        clips = 0
        start = time.perf_counter()
        extract_many(paths, options, networks, count, workers=workers)
        seconds = time.perf_counter() - start
        rates[workers] = (len(paths) / seconds, clips / seconds)
        base = rates[0][0]
        label = "one at a time (0 workers)" if workers == 0 else f"{workers} decoding worker(s)"
        print(f"  {label:<28} {rates[workers][1]:6.2f} clips/s")
        figure(f"extract_many, {label}", rates[workers][0], "videos/s", baseline=base,
               baseline_what="one at a time (0 workers)")  # fmt: skip
    start = time.perf_counter()
    for path in paths.values():
        for _ in video_inputs(path, options, CLIPS):
            pass
    seconds = time.perf_counter() - start
    print(f"  {'decode + preprocess only':<28} {len(paths) / seconds:6.3f} videos/s  {clips / seconds:6.2f} clips/s")


PEAK = """
import resource, sys, time
from kda.media.pipeline import ExtractOptions, Networks, extract_in_process
networks = Networks("cls", "offline")
if sys.argv[1] != "-":
    start = time.perf_counter()
    features = extract_in_process(sys.argv[1], ExtractOptions("cls", max_clips=int(sys.argv[2])), networks, int(sys.argv[3]))
    print(f"{features.visual_units[0]} of {features.visual_units[1]} clips, {features.audio_units[0]} audio examples, "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_rss(path: str, clips: int, batch: int = 1) -> float:
    """MiB, measured in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK, path, str(clips), str(batch)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    if result.stderr.strip():
        print(f"  {result.stderr.strip().splitlines()[-1]}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is not installed; nothing measured")
        return
    quick = "--quick" in sys.argv
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        videos = VIDEOS // 2 if quick else VIDEOS  # three passes over them: minutes on 2 busy cores
        paths = {f"v{i}": make_video(folder / f"v{i}.mp4", "640x360", SECONDS, i) for i in range(videos)}
        options = ExtractOptions("cls", max_clips=CLIPS, max_examples=8)
        print(f"throughput: {videos} videos of {SECONDS} s 360p, {CLIPS} C3D clips each, offline weights, CPU")
        throughput(paths, options, Networks("cls", "offline"))
        if quick:
            return
        start = time.perf_counter()
        long = make_video(folder / "long_1080p.mp4", "1920x1080", LONG_MINUTES * 60, 0)
        size = long.stat().st_size / 2**20
        print(
            f"peak RSS: a {LONG_MINUTES} min 1080p video ({size:.0f} MiB, made in {time.perf_counter() - start:.0f} s)"
        )
        base = peak_rss("-", 0)
        for clips, batch in ((8, 1), (32, 1), (8, 8)):
            peak = peak_rss(str(long), clips, batch)
            print(
                f"  C3D cap {clips:>2} clips, batch {batch}: peak RSS {peak:.0f} MiB; backbones alone {base:.0f} MiB; "
                f"extraction adds {peak - base:.0f} MiB"
            )


if __name__ == "__main__":
    main()
