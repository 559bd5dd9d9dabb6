"""Make the example videos of assets/examples/ with ffmpeg: moving test patterns with tones, one silent.

    python assets/examples/make_examples.py            # writes the .mp4 files next to this script
    python assets/examples/make_examples.py --out DIR  # or into DIR

Every input is an ffmpeg lavfi source (no downloads, nothing random without a fixed seed), encoded as
H.264 + AAC in mp4 with single-threaded encoders and bit-exact muxing, so a rerun with the same ffmpeg
build gives the same bytes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECONDS = 4  # length of every example
SIZE = "320x240"
FPS = 25
SAMPLE_RATE = 44100  # Hz, mono

# Fixed encoder settings: one thread each (x264's frame threads and slice decisions depend on the count),
# bit-exact flags so no encoder version string or creation time lands in the container.
VIDEO_CODEC = ["-c:v", "libx264", "-preset", "medium", "-crf", "30", "-pix_fmt", "yuv420p", "-g", str(2 * FPS)]
AUDIO_CODEC = ["-c:a", "aac", "-b:a", "64k", "-ac", "1", "-ar", str(SAMPLE_RATE)]
DETERMINISTIC = ["-threads", "1", "-flags", "+bitexact", "-fflags", "+bitexact", "-map_metadata", "-1"]

# A rising sweep 200 Hz -> 2 kHz over SECONDS: phase = 2 pi (f0 t + (f1 - f0) t^2 / (2 T)).
CHIRP = f"0.4*sin(2*PI*(200*t+(2000-200)*t*t/(2*{SECONDS})))"


@dataclass(frozen=True)
class Example:
    filename: str
    video: str  # lavfi video graph
    audio: str | None  # lavfi audio graph, None: no audio track
    about: str


EXAMPLES = [
    Example(
        "pattern_tone_440.mp4",
        f"testsrc2=size={SIZE}:rate={FPS}",
        f"sine=frequency=440:sample_rate={SAMPLE_RATE}",
        "ffmpeg's moving testsrc2 pattern with a steady 440 Hz tone",
    ),
    Example(
        "bars_chirp.mp4",
        f"smptebars=size={SIZE}:rate={FPS},scroll=horizontal=0.005",
        f"aevalsrc=exprs='{CHIRP}':s={SAMPLE_RATE}",
        "SMPTE colour bars scrolling sideways with a 200 Hz -> 2 kHz sweep",
    ),
    Example(
        "mandelbrot_noise.mp4",
        f"mandelbrot=size={SIZE}:rate={FPS}",
        f"anoisesrc=color=pink:amplitude=0.3:seed=7:sample_rate={SAMPLE_RATE}",
        "a zoom into the Mandelbrot set with pink noise (seeded)",
    ),
    Example(
        "no_audio.mp4",
        f"life=size=80x60:rate={FPS}:ratio=0.1:seed=7:mold=10:life_color=#00ff80:death_color=#102040,"
        f"scale={SIZE}:flags=neighbor",  # 4x4-pixel cells: the grid stays readable and compresses well
        None,
        "Conway's game of life (seeded), video only: no audio track",
    ),
]


def ffmpeg_command(ffmpeg: str, example: Example, out: Path) -> list[str]:
    """The ffmpeg command line that writes `example` to `out`."""
    inputs = ["-f", "lavfi", "-t", str(SECONDS), "-i", example.video]
    codecs = VIDEO_CODEC
    if example.audio is not None:
        inputs += ["-f", "lavfi", "-t", str(SECONDS), "-i", example.audio]
        codecs = VIDEO_CODEC + AUDIO_CODEC
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *inputs, *codecs, *DETERMINISTIC, str(out)]


def make_examples(out_dir: Path = HERE) -> list[Path]:
    """Write every example into `out_dir`; returns their paths."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is not installed: install it (apt-get install ffmpeg, brew install ffmpeg) and rerun")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for example in EXAMPLES:
        path = out_dir / example.filename
        done = subprocess.run(ffmpeg_command(ffmpeg, example, path), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"ffmpeg could not make {path.name}: {done.stderr.strip()}")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the videos into")
    args = parser.parse_args(argv)
    for path in make_examples(args.out):
        print(f"{path}  {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
