"""Extraction at scale: worker processes and batches give the features of the one-video-at-a-time path,
shards merged give the root of one unsharded run, an interrupted shard resumes, bf16 stays close to fp32,
and devices resolve in one place. Real videos made by ffmpeg, real (offline-weight) networks."""

import csv
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from media_factory import needs_ffmpeg, write_clip

from kda.cli import main
from kda.device import DeviceError, resolve_device
from kda.errors import KdaError
from kda.media import extract as extract_module
from kda.media import extract_video
from kda.media.dataset import SHARDS_DIR, in_shard, parse_shard
from kda.media.extract import CACHE_DIR, VideoExtractor
from kda.media.pipeline import ExtractOptions, Networks, extract_many

pytestmark = [pytest.mark.media, needs_ffmpeg]
ROOT = Path(__file__).resolve().parents[3]
CLASSES = {"RedThing": "red", "GreenThing": "green", "BlueThing": "blue", "GreyThing": "gray"}
# The CLIP setting on 2 frames: sharding does not depend on the backbone, and it is ~10x cheaper than C3D here.
OPTIONS = [
    "--setting",
    "clip",
    "--frames",
    "2",
    "--weights",
    "offline",
    "--max-examples",
    "1",
    "--dataset",
    "mine",
    "--quiet",
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Four classes of three 1.5 s clips (more than one C3D clip each), and a labels CSV."""
    folder = tmp_path_factory.mktemp("videos")
    rows = []
    for c, (label, color) in enumerate(CLASSES.items()):
        for i in range(3):
            name = f"{label}_{i}.mp4"
            write_clip(folder / name, color, seconds=1.5, tone=300 + 100 * c + 30 * i)
            rows.append((name, label))
    labels = folder / "labels.csv"
    with labels.open("w", newline="") as f:
        csv.writer(f).writerows([("filename", "label"), *rows])
    return folder, labels, rows


def extract(folder, labels, out, *extra) -> int:
    args = ["extract", "--videos", folder, "--labels", labels, "--out", out, *OPTIONS, *extra]
    return main([str(a) for a in args])


def layout(root: Path) -> dict[str, np.ndarray]:
    """Every feature row of a root, by (modality, folder, url)."""
    rows = {}
    for path in sorted((root / "features").rglob("*.h5")):
        with h5py.File(path) as f:
            for url, row in zip(f["video_urls"], f["data"][:], strict=True):
                rows[(path.parts[-3], path.parts[-2], url.decode())] = row
    return rows


def test_workers_and_batches_give_the_one_at_a_time_features(videos):
    folder, _, rows = videos
    paths = {name: folder / name for name, _ in rows[:3]}
    networks = Networks("cls", "offline")
    options = ExtractOptions("cls", max_clips=2, max_examples=3)
    results = {}
    for workers, batch in ((0, 1), (2, 3)):
        found = {}
        extract_many(paths, options, networks, found.__setitem__, workers=workers, batch=batch)
        results[workers] = found
    assert set(results[0]) == set(results[2]) == set(paths)
    for name in paths:
        one, many = results[0][name], results[2][name]
        np.testing.assert_allclose(many.visual, one.visual, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(many.audio, one.audio)  # quantised to whole numbers: exactly equal
        assert many.visual_units == one.visual_units and many.notes == one.notes


class CountedNetworks(Networks):
    """Networks that count their builds, each slow enough that two first calls at once would both build."""

    builds = 0
    lock = threading.Lock()

    def __init__(self, *args, **kwargs):
        with CountedNetworks.lock:
            CountedNetworks.builds += 1
        time.sleep(0.5)
        super().__init__(*args, **kwargs)


def test_an_extractor_builds_once_and_threads_extract_through_it_at_once(videos, monkeypatch):
    folder, _, rows = videos
    paths = [folder / name for name, _ in rows[::3]]  # one video of each colour
    monkeypatch.setattr(extract_module, "Networks", CountedNetworks)
    monkeypatch.setattr(CountedNetworks, "builds", 0)
    extractor = VideoExtractor.of("cls", weights="offline", max_clips=1, max_examples=2)
    with ThreadPoolExecutor(len(paths)) as pool:  # four first calls at once, on a fresh extractor
        together = list(pool.map(extractor.extract, paths))
    one_by_one = [extractor.extract(p) for p in paths]
    assert CountedNetworks.builds == 1 and isinstance(extractor.built, CountedNetworks)
    for a, b in zip(together, one_by_one, strict=True):
        assert a.path == b.path and a.notes == b.notes and a.visual_units == b.visual_units
        np.testing.assert_allclose(a.visual, b.visual, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(a.audio, b.audio)  # quantised to whole numbers: exactly equal
    assert not np.allclose(together[0].visual, together[1].visual)  # each thread got its own video's features


def test_a_bad_file_in_a_worker_skips_itself_only(videos, tmp_path):
    folder, _, rows = videos
    (tmp_path / "text.mp4").write_text("not a video\n" * 20)
    paths = {"good": folder / rows[0][0], "bad": tmp_path / "text.mp4"}
    found = {}
    extract_many(
        paths,
        ExtractOptions("cls", max_clips=1, max_examples=1),
        Networks("cls", "offline"),
        found.__setitem__,
        workers=1,
    )
    assert type(found["bad"]).__name__ == "NotMediaError" and "text.mp4" in str(found["bad"])
    # The good video's features are those it has on its own, through the one-video path.
    alone = extract_video(paths["good"], "cls", weights="offline", max_clips=1, max_examples=1)
    np.testing.assert_allclose(found["good"].visual, alone.visual, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(found["good"].audio, alone.audio)


def test_shards_merged_equal_one_unsharded_run(videos, tmp_path):
    folder, labels, rows = videos
    assert extract(folder, labels, tmp_path / "whole") == 0
    sharded = tmp_path / "sharded"
    assert extract(folder, labels, sharded, "--shard", "1/2") == 0
    assert not (sharded / "features").exists()  # a shard writes only its own part
    assert extract(folder, labels, sharded, "--shard", "2/2") == 0
    parts = {p.name: len(list((p / CACHE_DIR / "clip").glob("*.npz"))) for p in (sharded / SHARDS_DIR).iterdir()}
    assert sorted(parts) == ["1-of-2", "2-of-2"] and sum(parts.values()) == len(rows)
    assert extract(folder, labels, sharded, "--merge") == 0
    whole, merged = layout(tmp_path / "whole"), layout(sharded)
    assert set(whole) == set(merged) and len(whole) == 2 * len(rows)
    for key in whole:
        np.testing.assert_allclose(merged[key], whole[key], atol=1e-6)
    for name in ("all_class.txt", "clip_split/stage_1_train.csv", "clip_split/stage_2_test_unseen.csv"):
        assert (sharded / "class-split" / name).read_text() == (tmp_path / "whole" / "class-split" / name).read_text()


def test_merge_refuses_missing_videos_and_parts_of_other_shard_counts(videos, tmp_path, capsys):
    folder, labels, _ = videos
    out = tmp_path / "out"
    assert extract(folder, labels, out, "--shard", "1/2") == 0
    assert extract(folder, labels, out, "--merge") == 1
    assert "videos are in no part" in capsys.readouterr().err
    assert extract(folder, labels, out, "--shard", "2/2") == 0
    assert extract(folder, labels, out, "--shard", "1/1") == 0  # every video again, in a third part
    assert extract(folder, labels, out, "--merge") == 1
    assert "in more than one part" in capsys.readouterr().err


def test_an_interrupted_shard_resumes(videos, tmp_path):
    folder, labels, rows = videos
    out = tmp_path / "out"
    command = [sys.executable, "-m", "kda", "extract", "--videos", str(folder), "--labels", str(labels)]
    command += ["--out", str(out), "--shard", "1/1", *OPTIONS]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    entries = out / SHARDS_DIR / "1-of-1" / CACHE_DIR / "clip"
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and len(list(entries.glob("*.npz"))) < 2:
        time.sleep(0.05)
    process.kill()
    process.communicate()
    done = len(list(entries.glob("*.npz")))
    assert 2 <= done < len(rows), "the run was not stopped half-way"
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"{len(rows) - done} extracted, {done} already there" in result.stdout


def test_shards_are_stable_and_cover_every_video_once():
    names = [f"clip_{i}.mp4" for i in range(200)]
    for n in (1, 2, 3, 7):
        owners = [[k for k in range(1, n + 1) if in_shard(name, (k, n))] for name in names]
        assert all(len(o) == 1 for o in owners)
        assert n == 1 or min(sum(1 for o in owners if o == [k]) for k in range(1, n + 1)) > 200 / n / 2
    assert [in_shard(n, (1, 3)) for n in names] == [in_shard(n, (1, 3)) for n in reversed(names)][::-1]
    assert parse_shard("2/5") == (2, 5)
    for bad in ("0/2", "3/2", "a/b", "2"):
        with pytest.raises(KdaError, match="shard"):
            parse_shard(bad)


def test_bf16_features_stay_close_to_fp32(videos):
    folder, _, rows = videos
    options = ExtractOptions("cls", max_clips=1, max_examples=2)
    fp32, bf16 = {}, {}
    paths = {name: folder / name for name, _ in rows[:2]}
    extract_many(paths, options, Networks("cls", "offline", precision="fp32"), fp32.__setitem__)
    extract_many(paths, options, Networks("cls", "offline", precision="bf16"), bf16.__setitem__)
    for name in paths:
        a, b = fp32[name].visual, bf16[name].visual
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        assert cosine > 0.99, cosine  # the stated bound (README: --precision bf16)
        assert not np.array_equal(a, b)  # bf16 really ran


def test_devices_resolve_in_one_place():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            resolve_device("cuda:0")
