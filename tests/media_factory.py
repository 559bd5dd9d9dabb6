"""Real media files for the media tests, made by ffmpeg in a temporary folder (no mocks of decoders).

`make_all` makes each file once per session: test modules call it from their own fixture, and files
already in the session's folder are not made again.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")

# Two different tones, one per channel, so a downmix is checkable: left 0.5 * 440 Hz, right 0.25 * 1 kHz.
STEREO_EXPR = "0.5*sin(2*PI*440*t)|0.25*sin(2*PI*1000*t)"
MONO_EXPR = "0.5*sin(2*PI*440*t)"


def video_in(size: str = "160x120", rate: float = 25, seconds: float = 2.0) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


def audio_in(rate: int, seconds: float, stereo: bool) -> list[str]:
    expr = STEREO_EXPR if stereo else MONO_EXPR
    return ["-f", "lavfi", "-i", f"aevalsrc=exprs='{expr}':s={rate}:d={seconds}"]


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
MJPEG = ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"]


@dataclass(frozen=True)
class Case:
    filename: str
    args: list[str]  # ffmpeg arguments between the global options and the output file
    error: str | None = None  # name of the MediaError subclass expected, or None: decodes
    audio: bool = True  # has an audio track (when it decodes)


CASES = {
    "mp4_h264_aac": Case("h264_aac.mp4", video_in() + audio_in(44100, 2, True) + H264 + ["-c:a", "aac", "-shortest"]),
    "webm_vp9_opus": Case(
        "vp9_opus.webm",
        video_in()
        + audio_in(48000, 2, True)
        + ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k", "-c:a", "libopus"],
    ),
    "mkv_mpeg4_mp3": Case(
        "mpeg4_mp3.mkv", video_in() + audio_in(22050, 2, False) + ["-c:v", "mpeg4", "-c:a", "libmp3lame"]
    ),
    "mov_h264_pcm": Case("h264_pcm.mov", video_in() + audio_in(48000, 2, False) + H264 + ["-c:a", "pcm_s16le"]),
    "avi_mjpeg_pcm": Case("mjpeg_pcm.avi", video_in() + audio_in(44100, 2, True) + MJPEG + ["-c:a", "pcm_s16le"]),
    "avi_pcm_u8_mono": Case("u8_mono.avi", video_in() + audio_in(8000, 2, False) + MJPEG + ["-c:a", "pcm_u8"]),
    "avi_pcm_u8_stereo": Case("u8_stereo.avi", video_in() + audio_in(11025, 2, True) + MJPEG + ["-c:a", "pcm_u8"]),
    "variable_frame_rate": Case(
        "vfr.mp4",
        video_in(rate=25, seconds=2)
        + audio_in(16000, 2, False)
        # 25 fps for the first 10 frames, then 5 fps: frame times no longer evenly spaced.
        + ["-vf", "setpts='if(lt(N,10),N*0.04,0.4+(N-10)*0.2)/TB'", "-fps_mode", "vfr"]
        + H264
        + ["-c:a", "aac"],
    ),
    "rotated": Case("rotated.mp4", [], audio=False),  # made by `make_rotated`
    "no_audio": Case("no_audio.mp4", video_in() + H264, audio=False),
    "audio_only": Case("audio_only.m4a", audio_in(44100, 2, True) + ["-c:a", "aac"], error="NoVideoTrackError"),
    "one_frame": Case("one_frame.mp4", video_in(seconds=0.04) + audio_in(44100, 0.5, False) + H264 + ["-c:a", "aac"]),
    "zero_byte": Case("zero_byte.mp4", [], error="EmptyFileError"),
    "text_as_mp4": Case("text.mp4", [], error="NotMediaError"),
    "truncated": Case("truncated.mp4", [], error="CorruptMediaError"),  # the index (moov) is cut off
    "truncated_stream": Case("truncated_stream.mp4", [], error="CorruptMediaError"),  # index first, data cut off
    "uhd_4k": Case("uhd_4k.mp4", video_in("3840x2160", 5, 0.6) + H264, audio=False),
    "long_10_min": Case(
        "long.mp4", video_in("32x24", 5, 630) + audio_in(8000, 630, False) + H264 + ["-c:a", "aac", "-b:a", "16k"]
    ),
    "av1_unsupported": Case(
        "av1.mp4", video_in("64x48", 10, 1) + ["-c:v", "libaom-av1", "-cpu-used", "8"], error="UnsupportedCodecError"
    ),
}


def ffmpeg(args: list[str], out: Path) -> None:
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args, str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


def make_rotated(out: Path, folder: Path) -> None:
    """Rotation metadata (a display matrix) on an H.264 stream, as phones write it."""
    plain = folder / "rotated_source.mp4"
    ffmpeg(video_in() + H264, plain)
    ffmpeg(["-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90"], out)


def make_truncated(out: Path, folder: Path, faststart: bool) -> None:
    full = folder / f"full_{out.name}"
    ffmpeg(
        video_in(seconds=4)
        + audio_in(44100, 4, True)
        + H264
        + ["-c:a", "aac"]
        + (["-movflags", "+faststart"] if faststart else []),
        full,
    )
    data = full.read_bytes()
    out.write_bytes(data[: len(data) * 6 // 10])


def make(name: str, folder: Path) -> Path:
    """The file of case `name` in `folder`, made if absent."""
    case = CASES[name]
    out = folder / case.filename
    if out.exists():
        return out
    if name == "zero_byte":
        out.write_bytes(b"")
    elif name == "text_as_mp4":
        out.write_text("This is a plain text file with a video extension.\n" * 20)
    elif name == "rotated":
        make_rotated(out, folder)
    elif name in ("truncated", "truncated_stream"):
        make_truncated(out, folder, faststart=name == "truncated_stream")
    else:
        ffmpeg(case.args, out)
    return out


def encoder_available(name: str) -> bool:
    if name != "av1_unsupported":
        return True
    listing = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return "libaom-av1" in listing


def make_all(tmp_path_factory) -> dict[str, Path]:
    """Every case's file, by case name, in one folder of the session's temporary directory (files made by
    an earlier call are reused); cases whose encoder this ffmpeg lacks are left out."""
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    folder = tmp_path_factory.getbasetemp() / "media_cases"
    folder.mkdir(exist_ok=True)
    return {name: make(name, folder) for name in CASES if encoder_available(name)}


def write_clip(path: Path, color: str, seconds: float = 1.0, tone: float = 440.0, size: str = "64x48") -> Path:
    """A small labelled clip for dataset tests: a moving solid colour with a tone."""
    args = [
        *["-f", "lavfi", "-i", f"color=c={color}:size={size}:rate=16:duration={seconds}"],
        *["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=16000:duration={seconds}"],
        *["-vf", "noise=alls=30:allf=t"],
        *H264,
        *["-c:a", "aac", "-shortest"],
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg(args, path)
    return path


DECODES = [name for name, case in CASES.items() if case.error is None]  # cases that must decode
FAILS = [name for name, case in CASES.items() if case.error is not None]  # cases that must raise


def case_file(media_files: dict[str, Path], name: str) -> Path:
    if name not in media_files:
        pytest.skip(f"this ffmpeg cannot make the {name} case")
    return media_files[name]
