"""Decoding real media made by ffmpeg: every case decodes to bounded frames and mono 16 kHz audio, or
raises its specific error; plus channel order, rotation, variable frame rate, downmix and limits."""

import json
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from media_factory import CASES, DECODES, FAILS, H264, case_file, ffmpeg, needs_ffmpeg

from kda.errors import KdaError
from kda.media import errors
from kda.media.decode import SAMPLE_RATE, Limits, open_video, read_audio, resample

pytestmark = [pytest.mark.media, needs_ffmpeg]


NATIVE_RATES = {
    "mp4_h264_aac": 44100,
    "webm_vp9_opus": 48000,
    "mkv_mpeg4_mp3": 22050,
    "mov_h264_pcm": 48000,
    "avi_mjpeg_pcm": 44100,
    "avi_pcm_u8_mono": 8000,
    "avi_pcm_u8_stereo": 11025,
}


# Decoded frame size, frame count and duration of each decodable case, from media_factory's ffmpeg arguments:
# testsrc2 at 160x120, 25 fps, 2 s unless the case says otherwise.
GEOMETRY = {
    "variable_frame_rate": (160, 120, 50, 8.2),  # the last of 50 frames starts at 0.4 + 39 * 0.2 s
    "rotated": (120, 160, 50, 2.0),  # displayed turned a quarter
    "one_frame": (160, 120, 1, 0.04),
    "uhd_4k": (1280, 720, 3, 0.6),  # 3840x2160 decoded at the largest 16:9 size within 1280 * 720 pixels
    "long_10_min": (32, 24, 3150, 630.0),
}


@pytest.mark.parametrize("name", DECODES)
def test_every_video_decodes_to_bounded_rgb_frames(media_files, name):
    video = open_video(case_file(media_files, name))
    frames = video.frames(video.uniform_indices(4))
    width, height, count, seconds = GEOMETRY.get(name, (160, 120, 50, 2.0))
    assert frames.dtype == np.uint8 and frames.shape == (4, height, width, 3)
    assert frames.shape[1] * frames.shape[2] <= Limits().decode_max_pixels
    assert video.num_frames == count and video.duration_s == pytest.approx(seconds, abs=0.1)


@pytest.mark.parametrize("name", DECODES)
def test_audio_is_mono_16k_float_or_a_missing_track(media_files, name):
    path = case_file(media_files, name)
    if not CASES[name].audio:
        with pytest.raises(errors.NoAudioTrackError, match="no audio track"):
            read_audio(path)
        return
    audio = read_audio(path)
    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert 0 < np.abs(audio.samples).max() <= 1.0
    if name in NATIVE_RATES:
        assert audio.native_rate == NATIVE_RATES[name]
        assert audio.duration_s == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("name", FAILS)
def test_bad_files_raise_their_specific_error_naming_the_file(media_files, name):
    path = case_file(media_files, name)
    expected = getattr(errors, CASES[name].error)
    with pytest.raises(expected) as info:
        open_video(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, KdaError)  # the CLI and the app show it as one line


@pytest.mark.parametrize("name", ["zero_byte", "text_as_mp4", "truncated"])
def test_audio_of_bad_files_raises_the_same_error(media_files, name):
    path = case_file(media_files, name)
    with pytest.raises(getattr(errors, CASES[name].error), match=f"^{re.escape(str(path))}: "):  # names the file
        read_audio(path)


def test_missing_paths_and_folders(tmp_path):
    with pytest.raises(errors.MediaNotFoundError, match="no such file"):
        open_video(tmp_path / "nope.mp4")
    with pytest.raises(errors.MediaNotFoundError, match="folder"):
        read_audio(tmp_path)


def test_frames_are_rgb(tmp_path):
    path = tmp_path / "red.mp4"
    ffmpeg(["-f", "lavfi", "-i", "color=c=red:size=64x48:rate=10:duration=0.5", *H264], path)
    frame = open_video(path).frames([0])[0].astype(int)
    assert frame[..., 0].mean() > 200 and frame[..., 1].mean() < 60 and frame[..., 2].mean() < 60


def test_rotation_metadata_is_applied_as_ffmpeg_displays_it(media_files, tmp_path):
    path = case_file(media_files, "rotated")
    video = open_video(path)
    assert (video.width, video.height) == (120, 160)  # stored as 160x120, displayed turned a quarter
    raw = tmp_path / "frame.rgb"
    ffmpeg(["-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24"], raw)
    displayed = np.fromfile(raw, dtype=np.uint8).reshape(160, 120, 3).astype(int)
    assert np.abs(video.frames([0])[0].astype(int) - displayed).mean() < 2


def test_variable_frame_rate_is_sampled_by_time(media_files):
    video = open_video(case_file(media_files, "variable_frame_rate"))
    # The file shows frames 0-9 every 0.04 s, then one frame every 0.2 s from 0.4 s on.
    starts = [n * 0.04 if n < 10 else 0.4 + (n - 10) * 0.2 for n in range(video.num_frames)]
    assert np.allclose(video.starts, starts, atol=0.002)
    times = (np.arange(4) + 0.5) * video.duration_s / 4
    expected = [int(np.searchsorted(starts, t, side="right")) - 1 for t in times]
    assert list(video.uniform_indices(4)) == expected
    assert list(video.uniform_indices(4)) != list(np.linspace(0, video.num_frames - 1, 4).round().astype(int))
    one_per_second = video.fps_indices(1.0)
    assert len(one_per_second) == int(np.ceil(video.duration_s)) and one_per_second[0] == 0


def test_4k_frames_are_decoded_downscaled_and_huge_ones_refused(media_files):
    path = case_file(media_files, "uhd_4k")
    video = open_video(path)
    assert (video.width, video.height) == (3840, 2160) and video.downscaled
    assert video.frames([0, 1]).shape == (2, video.decode_height, video.decode_width, 3)
    assert video.decode_width / video.decode_height == pytest.approx(16 / 9, rel=0.01)
    with pytest.raises(errors.TooLargeError, match="megapixel"):
        open_video(path, Limits(max_pixels=1920 * 1080))
    with pytest.raises(errors.TooLargeError, match="GiB"):
        open_video(path, Limits(max_bytes=1000))


def test_a_long_video_decodes_within_limits_and_is_refused_beyond_them(media_files):
    path = case_file(media_files, "long_10_min")
    video = open_video(path)
    assert video.duration_s == pytest.approx(630, abs=1)
    assert video.frames(video.uniform_indices(3)).shape == (3, 24, 32, 3)
    audio = read_audio(path)
    assert audio.duration_s == pytest.approx(630, abs=1)
    assert any("FFmpeg" in note for note in audio.notes)  # past 10 min, resampled while decoding
    with pytest.raises(errors.TooLongError, match="10.5 min is over the 5 min limit"):
        open_video(path, Limits(max_duration_s=300))
    with pytest.raises(errors.TooLongError, match="audio of 10.5 min is over the 5 min limit"):
        read_audio(path, Limits(max_duration_s=300))


def pcm_wav(path, codec, rate, stereo):
    expr = "0.5*sin(2*PI*440*t)|0.25*sin(2*PI*1000*t)" if stereo else "0.5*sin(2*PI*440*t)"
    ffmpeg(["-f", "lavfi", "-i", f"aevalsrc=exprs='{expr}':s={rate}:d=1", "-c:a", codec], path)
    with wave.open(str(path)) as w:
        data = w.readframes(w.getnframes())
        width, channels = w.getsampwidth(), w.getnchannels()
    if width == 1:  # unsigned 8-bit
        samples = (np.frombuffer(data, np.uint8).astype(np.float64) - 128) / 128
    else:
        samples = np.frombuffer(data, "<i2").astype(np.float64) / 32768
    return samples.reshape(-1, channels)


@pytest.mark.parametrize("codec", ["pcm_s16le", "pcm_u8"])
@pytest.mark.parametrize("stereo", [False, True])
def test_channels_are_averaged_as_the_benchmark_did(tmp_path, codec, stereo):
    path = tmp_path / "tone.wav"
    channels = pcm_wav(path, codec, SAMPLE_RATE, stereo)  # (T, C), no resampling at 16 kHz
    audio = read_audio(path)
    assert audio.channels == (2 if stereo else 1)
    expected = channels.mean(axis=1)
    assert len(audio.samples) == len(expected)
    assert np.abs(audio.samples - expected).max() < 1e-4


def test_resampling_is_resampys_default_filter(tmp_path):
    import resampy

    path = tmp_path / "tone.wav"
    channels = pcm_wav(path, "pcm_s16le", 44100, stereo=False)
    expected = resampy.resample(channels[:, 0], 44100, SAMPLE_RATE)  # the benchmark's call
    audio = read_audio(path)
    assert audio.native_rate == 44100
    assert len(audio.samples) == len(expected)
    assert np.abs(audio.samples - expected).max() < 1e-5
    at_16k = np.linspace(-1, 1, 10, dtype=np.float32)
    np.testing.assert_array_equal(resample(at_16k, SAMPLE_RATE), at_16k)  # already 16 kHz: untouched


MEMORY_SCRIPT = """
import json, resource, sys
import decord, librosa  # imported first: only the decoding counts
from kda.media.decode import open_video, read_audio
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] == "uhd":
    open_video(sys.argv[2]).frames(range(3))
else:
    long = open_video(sys.argv[2])
    long.frames(long.uniform_indices(16))
    read_audio(sys.argv[2])
print(json.dumps({"grew_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024}))
"""


def decoding_grew_mib(part: str, path) -> float:
    """Peak memory that decoding `part` adds to a fresh process (each part alone, so neither hides the other)."""
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, part, str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["grew_mib"]


def test_decoding_4k_and_10_minutes_stays_in_bounded_memory(media_files):
    # Bounds about 1.25x what was measured, below what the regressions they guard against take:
    # 4K decoded at 1280x720: 165 MiB (at full size: 286 MiB);
    # 10 min, frames and audio: 173 MiB (audio through the exact native-rate path: 493 MiB).
    uhd = decoding_grew_mib("uhd", case_file(media_files, "uhd_4k"))
    assert uhd < 208, f"decoding 3 frames of a 4K video grew the process by {uhd:.0f} MiB"
    long = decoding_grew_mib("long", case_file(media_files, "long_10_min"))
    assert long < 224, f"decoding a 10-minute video grew the process by {long:.0f} MiB"


def test_limit_messages_say_seconds_under_a_minute():
    from kda.media.decode import span

    assert [span(s) for s in (10, 15.04, 59.4, 60, 300, 630)] == ["10 s", "15 s", "59 s", "1 min", "5 min", "10.5 min"]


def test_first_resamples_in_several_threads_at_once():
    """librosa loads resampy lazily; in a fresh process, four first resamples at once must all succeed."""
    code = """
import threading
import numpy as np
from kda.media.decode import resample
errors = []
def run():
    try:
        assert resample(np.zeros(44100, np.float32), 44100).shape == (16000,)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=run) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors)
"""
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
