"""C3D reads videos as the benchmark did after converting them to 25 fps: frame k is the native frame shown
at t = k / 25 s. Checked on 50, 30 and 25 fps videos made by ffmpeg."""

import numpy as np
import pytest
from media_factory import H264, ffmpeg, needs_ffmpeg, video_in

from kda.media.c3d import BENCHMARK_FPS, benchmark_frames
from kda.media.decode import open_video

SECONDS = 2


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fps")
    out = {}
    for fps in (50, 30, 25):
        out[fps] = folder / f"testsrc_{fps}fps.mp4"
        ffmpeg(video_in(rate=fps, seconds=SECONDS) + H264, out[fps])
    return out


def test_hand_computed_resampling():
    starts = np.arange(6) / 10  # 10 fps, 0.6 s: 15 frames at 25 fps, each native frame repeated
    indices, times = benchmark_frames(starts, 0.6)
    assert times == pytest.approx(np.arange(15) / 25)
    assert indices.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5]


@pytest.mark.media
@needs_ffmpeg
@pytest.mark.parametrize("fps", [50, 30, 25])
def test_frames_are_those_a_25_fps_reencode_keeps(videos, fps):
    video = open_video(videos[fps])
    assert video.num_frames == fps * SECONDS
    indices, times = benchmark_frames(video.starts, video.duration_s)
    k = np.arange(SECONDS * BENCHMARK_FPS)
    assert times == pytest.approx(video.starts[0] + k / 25)
    # The frame shown at k/25 s: native frame floor(k * fps / 25) of a constant-rate video.
    assert indices.tolist() == (k * fps // 25).tolist()
    # ...and by the container's own timestamps: it starts at or before t_k, the next one after it.
    assert np.all(video.starts[indices] <= times + 1e-6)
    following = np.minimum(indices + 1, len(video.starts) - 1)
    assert np.all((video.starts[following] > times) | (indices == len(video.starts) - 1))
    if fps == 50:
        assert indices.tolist() == list(range(0, 100, 2))  # every other frame dropped
    if fps == 30:
        assert indices[:7].tolist() == [0, 1, 2, 3, 4, 6, 7]  # one frame in six dropped
    if fps == 25:
        assert indices.tolist() == list(range(50))  # unchanged


@pytest.mark.media
@needs_ffmpeg
@pytest.mark.parametrize("fps", [50, 30, 25])
def test_extraction_uses_every_25_fps_clip(videos, fps):
    from kda.media.pipeline import ExtractOptions, Plan, video_inputs

    plan = next(video_inputs(videos[fps], ExtractOptions("cls", max_clips=None)))
    assert plan == Plan(4)  # 50 frames at 25 fps: ceil(50 / 16) clips, whatever the native rate


def test_every_clip_is_the_default_and_is_recorded():
    from types import SimpleNamespace

    from kda.media.dataset import DatasetOptions, sampling_record
    from kda.media.extract import VideoExtractor
    from kda.media.pipeline import ExtractOptions
    from kda.settings import get_setting

    # benchmark-exact by default: one video, a dataset, and the options both are made of
    for options in (ExtractOptions(), VideoExtractor.of("cls").options, DatasetOptions().extract):
        assert options.max_clips is None
    exact = SimpleNamespace(caps="every C3D clip at 25 fps (benchmark-exact)", sampled=0)
    assert sampling_record(get_setting("cls"), exact) == {
        "caps": exact.caps,
        "videos_sampled": 0,
        "c3d_fps": 25,
        "every_clip": True,
    }
