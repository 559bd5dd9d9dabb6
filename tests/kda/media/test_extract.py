"""Features from real media: the test battery through `extract_video`, the backbone registry, and
`kda extract` on a labelled folder of ffmpeg-made clips, read back by `load_benchmark` and trained on."""

import contextlib
import csv
import io
import json
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from media_factory import CASES, DECODES, FAILS, needs_ffmpeg, write_clip

from kda.benchmark import FEATURE_FOLDERS, BenchmarkError, load_benchmark
from kda.checkpoint import load_checkpoint
from kda.cli import main
from kda.media import errors, extract_video
from kda.media.backbones import he_init, seeded
from kda.media.labels import LabeledVideo, LabelsError, assign
from kda.media.vggish import VGGish
from kda.settings import SettingError, get_setting, list_settings

pytestmark = [pytest.mark.media, needs_ffmpeg]


OFFLINE = {"weights": "offline", "max_clips": 1, "max_examples": 4}  # C3D costs ~2.5 s per clip on a CPU


@pytest.fixture(scope="module")
def battery(media_files):
    """cls features of every decodable case (or the exception it raised), computed once."""
    results = {}
    for name in DECODES:
        try:
            results[name] = extract_video(media_files[name], "cls", **OFFLINE)
        except Exception as e:  # reported by the test of that case
            results[name] = e
    return results


@pytest.mark.parametrize("name", DECODES)
def test_every_decodable_case_gives_cls_features_of_the_right_shape(battery, name):
    features = battery[name]
    if isinstance(features, Exception):
        raise features
    assert features.visual.shape == (4096,) and features.visual.dtype == np.float32
    assert np.isfinite(features.visual).all()
    assert features.offline and any("carry no meaning" in note for note in features.notes)
    if CASES[name].audio:
        assert features.audio.shape == (128,) and features.has_audio
        assert features.audio.min() >= 0 and features.audio.max() <= 255
    else:
        assert features.audio is None and not features.has_audio
        assert any("visual-only" in note for note in features.notes)


@pytest.mark.parametrize("name", FAILS)
def test_bad_cases_raise_their_specific_error(media_files, name):
    if name not in media_files:
        pytest.skip(f"this ffmpeg cannot make the {name} case")
    path = media_files[name]
    with pytest.raises(getattr(errors, CASES[name].error), match=f"^{re.escape(str(path))}: "):  # names the file
        extract_video(path, "cls", **OFFLINE)


def test_sampling_is_stated(battery):
    long = battery["long_10_min"]
    # 630 s at 5 fps, read at 25 fps as the benchmark did: 15,750 frames, 985 clips of 16.
    assert long.sampled and long.visual_units == (1, 985) and long.audio_units == (4, 656)
    assert any("1 of 985 16-frame clips at 25 fps" in note for note in long.notes)
    assert any("4 of 656" in note for note in long.notes)
    short = battery["one_frame"]
    assert short.visual_units == (1, 1) and any("zero-padded" in note for note in short.notes)
    assert any("1 frame(s) long at 25 fps (0.04 s), shorter than one 16-frame C3D clip" in n for n in short.notes)
    assert any("decoded at 1280x720 (from 3840x2160)" in note for note in battery["uhd_4k"].notes)


def test_offline_features_differ_between_videos_and_weights_are_reproducible(battery):
    a, b = battery["mp4_h264_aac"], battery["avi_pcm_u8_stereo"]
    assert not np.allclose(a.audio, b.audio) and not np.allclose(a.visual, b.visual)
    first, again = (seeded(lambda: he_init(VGGish())).state_dict() for _ in range(2))
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_clip_setting_gives_512_d_frame_features(media_files):
    features = extract_video(media_files["webm_vp9_opus"], "clip", weights="offline", frames=2, max_examples=2)
    assert features.visual.shape == (512,) and features.audio.shape == (128,)
    assert features.visual_units == (2, 2) and not features.sampled
    assert 0 < np.linalg.norm(features.visual) <= 1.0 + 1e-5  # a mean of unit vectors


def test_registry_names_settings_and_refuses_main():
    assert get_setting("cls").dims == (128, 4096) and get_setting("clip").dims == (128, 512)
    assert get_setting("main").dims == (512, 512) and not get_setting("main").has_extractor
    assert list_settings() == ["cls", "main", "clip"] and list_settings(extractable=True) == ["cls", "clip"]
    with pytest.raises(SettingError, match="SeLaVi"):
        get_setting("main").require_extractor()
    with pytest.raises(SettingError, match="choose one of cls, main, clip"):
        get_setting("nope")
    with pytest.raises(SettingError, match="SeLaVi"):
        extract_video("whatever.mp4", "main")


# ---------------------------------------------------------------------------------------------
# kda extract

COLORS = {"RedThing": ("red", 300), "GreenThing": ("green", 600), "BlueThing": ("blue", 900)}


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """Three classes of three short clips each, a labels CSV, and one broken file listed with them."""
    folder = tmp_path_factory.mktemp("videos")
    rows = []
    for label, (color, tone) in COLORS.items():
        for i in range(3):
            name = f"{label.lower()}/{label}_{i}.mp4"
            write_clip(folder / name, color, seconds=1.0, tone=tone + 50 * i)
            rows.append((name, label))
    (folder / "broken.mp4").write_text("not a video")
    labels = folder / "labels.csv"
    write_rows(labels, ["filename", "label"], rows + [("broken.mp4", "RedThing")])
    return folder, labels, rows


def write_rows(path, header, rows):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def run_extract(folder, labels, out) -> tuple[int, str, str]:
    """`kda extract` in this process (models stay loaded): exit code, stdout, stderr."""
    args = ["extract", "--videos", folder, "--labels", labels, "--out", out, "--weights", "offline",
            "--max-clips", 1, "--max-examples", 2, "--dataset", "mine", "--quiet"]  # fmt: skip
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in args])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def extracted(labelled_folder, tmp_path_factory):
    folder, labels, _ = labelled_folder
    out = tmp_path_factory.mktemp("root")
    return (out, *run_extract(folder, labels, out))


def test_extract_writes_a_benchmark_root_that_loads_in_both_stages(extracted, labelled_folder):
    out, code, stdout, stderr = extracted
    assert code == 0
    broken = labelled_folder[0] / "broken.mp4"  # reported (on stderr) with its reason, not fatal
    assert f"skipped broken.mp4: {broken}: is not a video or audio file that FFmpeg recognises" in stderr
    assert len(stdout.strip().splitlines()) == 1  # stdout: the summary line only
    summary = stdout.strip()
    assert "9 of 10 videos written" in summary and "1 failed" in summary and "OFFLINE" in summary
    assert "cap per video: 1 C3D clips (speed cap), 2 audio examples" in summary
    sampling = json.loads((out / "extraction.json").read_text())["sampling"]  # the cap is in the provenance
    assert sampling["c3d_fps"] == 25 and sampling["every_clip"] is False and "speed cap" in sampling["caps"]
    bench = load_benchmark(out, "mine", "cls")
    assert sorted(bench.classes) == sorted(COLORS)
    assert (out / "class-split" / "mine_w2v_class_names.csv").exists()  # how the root names its dataset
    with pytest.raises(BenchmarkError, match="choose one of"):
        load_benchmark(out, "Kinetics", "cls")
    # Three classes fill the three roles: stage 1 sees one and holds one out; stage 2 sees both, holds the third out.
    for number, (seen, unseen) in ((1, (1, 1)), (2, (2, 1))):
        stage = bench.stage(number)
        assert stage.train.audio.shape[1:] == (128,) and stage.train.visual.shape[1:] == (4096,)
        assert (len(stage.seen), len(stage.unseen)) == (seen, unseen)
    assert bench.dims == (128, 4096)
    urls = {u for folder in FEATURE_FOLDERS for u in bench.read_folder(folder).urls}
    assert urls == {name for name, _ in labelled_folder[2]}


def test_extract_resumes_without_extracting_again(extracted, labelled_folder):
    out = extracted[0]
    folder, labels, _ = labelled_folder
    before = {p: p.stat().st_mtime_ns for p in (out / ".kda-extract").rglob("*.npz")}
    code, stdout, _ = run_extract(folder, labels, out)
    assert code == 0 and "0 extracted, 9 already there" in stdout
    assert {p: p.stat().st_mtime_ns for p in (out / ".kda-extract").rglob("*.npz")} == before


def test_a_split_column_places_videos_in_the_given_folders(extracted, labelled_folder, tmp_path):
    out = extracted[0]
    folder, _, rows = labelled_folder
    split = {"RedThing": ["stage_1_train", "stage_1_train", "stage_1_val_seen"],
             "GreenThing": ["stage_1_val_unseen", "stage_2_test_seen", "stage_1_val_unseen"],
             "BlueThing": ["stage_2_test_unseen"] * 3}  # fmt: skip
    labels = tmp_path / "labels_split.csv"
    write_rows(labels, ["filename", "label", "split"], [(n, label, split[label][int(n[-5])]) for n, label in rows])
    code, stdout, _ = run_extract(folder, labels, out)
    assert code == 0 and "0 extracted, 9 already there" in stdout  # a new split reuses every video's features
    bench = load_benchmark(out, "mine", "cls")
    assert bench.splits["stage_1_train"] == ["RedThing"] and bench.splits["stage_2_test_unseen"] == ["BlueThing"]
    with h5py.File(out / "features/cls_features/video/stage_2_test_seen/GreenThing.h5") as f:
        assert [u.decode() for u in f["video_urls"]] == ["greenthing/GreenThing_1.mp4"]


def test_labels_that_cannot_make_two_stages_are_one_clear_error(labelled_folder, tmp_path):
    folder, _, rows = labelled_folder
    labels = tmp_path / "two_classes.csv"
    write_rows(labels, ["filename", "label"], [r for r in rows if r[1] != "BlueThing"])
    code, _, stderr = run_extract(folder, labels, tmp_path / "out")
    assert code == 1 and "at least 3 classes" in stderr and len(stderr.strip().splitlines()) == 1


def test_default_assignment_is_deterministic_and_fills_every_folder():
    videos = [LabeledVideo(f"{c}_{i}.mp4", c) for c in "ABCDEFGHIJ" for i in range(6)]
    first, again = assign(videos), assign(list(reversed(videos)))
    assert first.roles == again.roles and first.folders == again.folders
    assert sorted(first.roles.values()).count("val_unseen") == 2
    assert set(first.folders.values()) == set(FEATURE_FOLDERS)
    with pytest.raises(LabelsError, match="either seen in stage 1"):
        assign([LabeledVideo("a.mp4", "A", "stage_1_train"), LabeledVideo("b.mp4", "A", "stage_2_test_unseen")])


def test_train_runs_on_the_extracted_root(extracted, tmp_path):
    out = extracted[0]
    bench = load_benchmark(out, "mine", "cls")
    rng = np.random.default_rng(0)
    knowledge = tmp_path / "knowledge.npz"
    np.savez(knowledge, names=np.array(bench.classes), embeddings=rng.standard_normal((len(bench.classes), 512)))
    cmd = [sys.executable, "-m", "kda", "train", "--root", str(out), "--dataset", "mine", "--setting", "cls",
           "--knowledge", str(knowledge), "--out", str(tmp_path / "ck"), "--epochs", "2", "--batch-size", "2", "--quiet"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.class_ids == bench.classes and ckpt.feature_weights == "offline"  # trained on offline features
    assert ckpt.provenance["dataset"] == "mine" and ckpt.provenance["features"]["source"] == "kda extract"
    log = [json.loads(line) for line in (tmp_path / "ck" / "train_log.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["epoch"]) for e in log[:2]] == [(1, 1), (1, 2)]
