"""Decoding media files with decord: probing against limits, video frames sampled by index or time at a
bounded size, and the audio track as mono 16 kHz float.

Every failure is one of the exceptions in `kda.media.errors`. decord reports failures as C++ check
messages; the FFmpeg error code inside them tells a missing stream from a missing decoder.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kda.media.errors import (
    CorruptMediaError,
    EmptyFileError,
    MediaError,
    MediaNotFoundError,
    NoAudioTrackError,
    NotMediaError,
    NoVideoTrackError,
    TooLargeError,
    TooLongError,
    UnsupportedCodecError,
)

SAMPLE_RATE = 16_000  # Hz, the audio rate every audio backbone here takes
PROBE_RATE = 2_000  # Hz: a cheap extra decode that gives the channel count and, by ratio, the native rate
STANDARD_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000, 192000)
RATE_SNAP = 0.03  # a measured rate within 3 % of a standard one is that rate (they are >= 8 % apart)
EXACT_RESAMPLE_MAX_S = 600.0  # longer tracks are resampled by FFmpeg while decoding (bounded time and memory)
INT16_MAX = 32767 / 32768  # largest sample an int16 WAV holds, as a float
# One decoding thread: decord's frame-threaded decoding fails on seeks in some VP9 files ("Error sending
# packet", EAGAIN), and a single thread decodes the few frames sampled here fast enough.
DECODE_THREADS = 1

# FFmpeg error codes that appear in decord's messages (FFERRTAG values).
AVERROR_STREAM_NOT_FOUND = -0x525453F8  # "\xf8STR": the file has no stream of that kind
AVERROR_DECODER_NOT_FOUND = -0x434544F8  # "\xf8DEC": the stream's codec has no decoder here

STDERR_LOCK = threading.Lock()  # file descriptor 2 is process-wide
# librosa loads resampy on first use through importlib's LazyLoader, which is not thread-safe here (Python 3.11):
# two first resamples at once saw a half-loaded module ("module 'resampy' has no attribute 'resample'").
RESAMPY_LOAD_LOCK = threading.Lock()
# File signatures of containers FFmpeg reads: a file that starts like one of these but does not open
# is corrupt; one that starts like none of them is not media at all.
SIGNATURES = (
    (4, b"ftyp"),  # MP4, MOV, M4A, 3GP
    (4, b"moov"),  # old QuickTime
    (4, b"mdat"),
    (4, b"wide"),
    (4, b"free"),
    (0, b"RIFF"),  # AVI, WAV
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska, WebM
    (0, b"OggS"),
    (0, b"FLV"),
    (0, b"fLaC"),
    (0, b"ID3"),  # MP3 with a tag
    (0, b"\x30\x26\xb2\x75"),  # ASF, WMV
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
)


@dataclass(frozen=True)
class Limits:
    """What a caller accepts; larger inputs raise `TooLongError` / `TooLargeError`."""

    max_duration_s: float = 3600.0  # refuse media longer than an hour
    max_pixels: int = 8192 * 4320  # refuse frames beyond 8K
    max_bytes: int = 8 * 2**30  # refuse files over 8 GiB
    decode_max_pixels: int = 1280 * 720  # larger frames are decoded downscaled (aspect kept) to bound memory


DEFAULT_LIMITS = Limits()


@dataclass
class Audio:
    samples: np.ndarray  # (T,) float32 mono at 16 kHz
    native_rate: int | None  # Hz, as stored in the file (None: not measured, for tracks FFmpeg resampled)
    channels: int
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


# ---------------------------------------------------------------------------------------------
# Files and decord's errors


def check_file(path: str | Path, limits: Limits) -> Path:
    path = Path(path)
    if not path.exists():
        raise MediaNotFoundError(path, "no such file; check the path")
    if not path.is_file():
        raise MediaNotFoundError(path, "is a folder, not a media file")
    size = path.stat().st_size
    if size == 0:
        raise EmptyFileError(path, "the file is empty (0 bytes); the upload or copy may have failed, try again")
    if size > limits.max_bytes:
        raise TooLargeError(path, f"{size / 2**30:.1f} GiB is over the {limits.max_bytes / 2**30:.1f} GiB limit")
    return path


def looks_like_media(path: Path) -> bool:
    """Whether the file starts like a container FFmpeg reads (or an MPEG audio / transport stream)."""
    with path.open("rb") as f:
        head = f.read(4096)
    if any(head[offset : offset + len(magic)] == magic for offset, magic in SIGNATURES):
        return True
    mpeg_audio = len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0  # MP3 / ADTS frame sync
    transport = len(head) > 188 and head[0] == 0x47 and head[188] == 0x47  # 188-byte TS packets
    return mpeg_audio or transport


def ffmpeg_code(message: str) -> int | None:
    """The FFmpeg error code in a decord message: `Check failed: st_nb >= 0 (CODE vs. 0)` or `failed with CODE`."""
    match = re.search(r"\((-?\d+) vs\. 0\)", message) or re.search(r"failed with (-?\d+)", message)
    if not match:
        return None
    code = int(match.group(1))
    return code if code < 0 else -code  # decord prints some codes negated


def open_error(path: Path, error: Exception, stream: str) -> MediaError:
    """The specific error for a decord failure while opening or reading `stream` ('video' or 'audio')."""
    message = str(error)
    code = ffmpeg_code(message)
    if code == AVERROR_DECODER_NOT_FOUND:
        return UnsupportedCodecError(
            path,
            f"its {stream} codec cannot be decoded here; convert it, e.g. `ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4`",
        )
    if code == AVERROR_STREAM_NOT_FOUND or "Can't find audio stream" in message:
        if stream == "video":
            return NoVideoTrackError(path, "has no video track (audio only?); give a video file")
        return NoAudioTrackError(path, "has no audio track")
    if not looks_like_media(path):
        return NotMediaError(path, "is not a video or audio file that FFmpeg recognises; check the file type")
    lines = re.sub(r"\[[\d:]+\] \S+?:\d+: ", "", message).strip().splitlines()  # drop decord's source locations
    detail = lines[-1][:160] if lines else type(error).__name__
    return CorruptMediaError(
        path, f"the file is damaged or truncated (decoder said: {detail}); re-download or re-export it"
    )


def decord_errors() -> tuple[type[Exception], ...]:
    import decord

    return (decord.DECORDError, RuntimeError, IndexError, ValueError)


@contextlib.contextmanager
def native_stderr_silenced():
    """decord's C++ code logs "ERROR opening: PATH" to file descriptor 2 before raising, which Python cannot
    intercept; our exception says the same, better. So fd 2 points at /dev/null while a reader opens."""
    with STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_decord():
    import decord

    decord.logging.set_level(decord.logging.QUIET)  # FFmpeg's own log lines would only repeat our errors
    return decord


# ---------------------------------------------------------------------------------------------
# Video


class Video:
    """An open video stream (the decord reader is the state). Frames come back as (n, h, w, 3) uint8 RGB,
    displayed the right way up (decord applies rotation metadata) and at most `decode_max_pixels` large."""

    def __init__(self, path: str | Path, limits: Limits = DEFAULT_LIMITS):
        self.path = check_file(path, limits)
        self.limits = limits
        self.reader = self.open_reader(-1, -1)
        self.num_frames = len(self.reader)
        if self.num_frames == 0:
            raise CorruptMediaError(self.path, "the video track has no decodable frames; re-export the file")
        self.starts = self.read_timestamps()  # (N,) start time of each frame, seconds
        self.duration_s = self.frame_end - float(self.starts[0])  # some streams start after 0 s
        if self.duration_s > limits.max_duration_s:
            raise TooLongError(
                self.path,
                f"{span(self.duration_s)} is over the {span(limits.max_duration_s)} limit; trim the video",
            )
        self.height, self.width = self.frames([0]).shape[1:3]  # as displayed, at full size
        self.check_size()
        self.decode_height, self.decode_width = self.height, self.width
        if self.height * self.width > limits.decode_max_pixels:
            self.decode_width, self.decode_height = bounded_size(self.width, self.height, limits.decode_max_pixels)
            self.reader = self.open_reader(self.decode_width, self.decode_height)

    def open_reader(self, width: int, height: int):
        decord = quiet_decord()
        try:
            with native_stderr_silenced():
                return decord.VideoReader(str(self.path), width=width, height=height, num_threads=DECODE_THREADS)
        except decord_errors() as e:
            raise open_error(self.path, e, "video") from e

    def read_timestamps(self) -> np.ndarray:
        try:
            spans = np.asarray(self.reader.get_frame_timestamp(np.arange(self.num_frames)), dtype=np.float64)
        except decord_errors() as e:
            raise open_error(self.path, e, "video") from e
        self.frame_end = max(float(spans[-1, 1]), float(spans[-1, 0]))  # end of the last frame
        return spans[:, 0]

    def check_size(self) -> None:
        if self.height * self.width > self.limits.max_pixels:
            raise TooLargeError(
                self.path,
                f"frames of {self.width}x{self.height} are over the {self.limits.max_pixels / 1e6:.1f} megapixel "
                "limit; downscale the video (e.g. `ffmpeg -i IN -vf scale=-2:1080 OUT.mp4`)",
            )

    @property
    def fps(self) -> float:
        return self.num_frames / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def downscaled(self) -> bool:
        return (self.decode_width, self.decode_height) != (self.width, self.height)

    def frames(self, indices) -> np.ndarray:
        """(n, h, w, 3) uint8 RGB frames at the given indices (decoded at the bounded size)."""
        indices = [int(i) for i in indices]
        try:
            return self.reader.get_batch(indices).asnumpy()
        except decord_errors() as e:
            raise open_error(self.path, e, "video") from e

    def indices_at(self, times: np.ndarray) -> np.ndarray:
        """Index of the frame shown at each time (seconds); right for variable frame rates too."""
        positions = np.searchsorted(self.starts, np.asarray(times, dtype=np.float64), side="right") - 1
        return np.clip(positions, 0, self.num_frames - 1)

    def uniform_indices(self, count: int) -> np.ndarray:
        """`count` frames at evenly spaced times (the middle of `count` equal spans of the video)."""
        times = self.starts[0] + (np.arange(count) + 0.5) * self.duration_s / count
        return self.indices_at(times)

    def fps_indices(self, fps: float, max_frames: int | None = None) -> np.ndarray:
        """Frames sampled at a fixed rate in time (each distinct frame once), capped to `max_frames`."""
        times = self.starts[0] + np.arange(0.0, self.duration_s, 1.0 / fps)
        indices = np.unique(self.indices_at(times))
        if max_frames is not None and len(indices) > max_frames:
            indices = indices[uniform_subset(len(indices), max_frames)]
        return indices


def span(seconds: float) -> str:
    """A duration as a message says it: '15 s' under a minute, else minutes ('10.5 min', '5 min')."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f}".removesuffix(".0") + " min"


def bounded_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest even-sided size with the same aspect ratio and at most `max_pixels` pixels."""
    scale = math.sqrt(max_pixels / (width * height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def uniform_subset(total: int, count: int) -> np.ndarray:
    """`count` of `total` positions spread evenly, first and last included (all when count >= total)."""
    if count >= total:
        return np.arange(total)
    return np.unique(np.round(np.linspace(0, total - 1, count)).astype(int))


def open_video(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Video:
    return Video(path, limits)


# ---------------------------------------------------------------------------------------------
# Audio


def read_audio(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Audio:
    """The audio track as mono float32 at 16 kHz, made as the benchmark made it (docs/EXTRACTION.md,
    "Audio" steps 1-3) up to the documented approximations below. The track is held as float32 at its native
    rate up to EXACT_RESAMPLE_MAX_S and at 16 kHz beyond, so a long file never costs its native-rate size;
    decoding itself peaks higher (about 170 MiB for a 10-minute file, tests/kda/media/test_decode.py)."""
    path = check_file(path, limits)
    # decord's multi-channel output is unreliable, so samples are only ever decoded with mono=True; this
    # low-rate multi-channel decode is used for its shape alone: the channel count and the track length.
    probe = decode_audio(path, PROBE_RATE, mono=False)  # (C, T_probe), values unused
    channels, probe_samples = probe.shape
    del probe
    duration = probe_samples / PROBE_RATE
    if probe_samples == 0:
        raise NoAudioTrackError(path, "the audio track is empty")
    if duration > limits.max_duration_s:
        raise TooLongError(path, f"audio of {span(duration)} is over the {span(limits.max_duration_s)} limit")
    notes = []
    if duration <= EXACT_RESAMPLE_MAX_S:
        native = decode_audio(path, -1, mono=True)[0]  # (T_native,) at the file's rate
        rate = native_rate(len(native), probe_samples)
        samples = resample(benchmark_mono(native, channels), rate)
    else:
        rate = None  # not measured: FFmpeg resamples while decoding
        samples = benchmark_mono(decode_audio(path, SAMPLE_RATE, mono=True)[0], channels)
        notes.append(
            f"audio longer than {EXACT_RESAMPLE_MAX_S / 60:.0f} min was resampled by FFmpeg, not resampy (a small deviation)"
        )
    if channels > 2:
        notes.append(f"{channels}-channel audio was downmixed with FFmpeg's matrix (the benchmark averaged channels)")
    return Audio(samples.astype(np.float32), rate, channels, notes)


def decode_audio(path: Path, rate: int, mono: bool) -> np.ndarray:
    """(C, T) float32 samples from decord at `rate` Hz (-1: the file's rate)."""
    decord = quiet_decord()
    try:
        with native_stderr_silenced():
            reader = decord.AudioReader(str(path), sample_rate=rate, mono=mono)
    except decord_errors() as e:
        raise open_error(path, e, "audio") from e
    # The decoded array itself: decord's slice accessor would build a Python list of every sample index.
    return reader._array


def native_rate(native_samples: int, probe_samples: int) -> int:
    """The file's sample rate from the lengths of the native and the PROBE_RATE decodes."""
    measured = native_samples * PROBE_RATE / probe_samples
    nearest = min(STANDARD_RATES, key=lambda r: abs(r - measured))
    return nearest if abs(nearest - measured) <= RATE_SNAP * nearest else round(measured)


def benchmark_mono(mono: np.ndarray, channels: int) -> np.ndarray:
    """decord's mono downmix turned into the benchmark's: the mean of the channels, clipped like int16."""
    if channels == 2:
        # FFmpeg mixes stereo to mono as (L + R) / sqrt(2); the benchmark took the mean (L + R) / 2.
        mono = mono / np.sqrt(2.0)
    # The benchmark exported 16-bit WAV: samples clip to [-1, 32767/32768]. (The int16 rounding itself,
    # below 2^-15, is not emulated: decoders differ by more than that.)
    return np.clip(mono, -1.0, INT16_MAX)


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """To 16 kHz with resampy's default filter, as the benchmark did (librosa's `kaiser_best` is resampy's)."""
    if rate == SAMPLE_RATE:
        return samples
    import librosa
    from librosa.core import audio

    with RESAMPY_LOAD_LOCK:
        audio.resampy.resample  # noqa: B018 (loads the lazy module, once, in one thread; then a no-op)
    return librosa.resample(samples.astype(np.float32), orig_sr=rate, target_sr=SAMPLE_RATE, res_type="kaiser_best")
