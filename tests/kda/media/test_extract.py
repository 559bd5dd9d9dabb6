"""Features from real media: the test battery through `extract_video`, the backbone registry, and
`kda extract` on a labelled folder of ffmpeg-made clips, read back by `load_benchmark` and trained on."""

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY_EXTRACT, TINY_SPLITS, run_cli
from media_factory import CASES, DECODES, FAILS, needs_ffmpeg, write_clip

from kda.benchmark import FEATURE_FOLDERS, BenchmarkError, load_benchmark
from kda.checkpoint import load_checkpoint
from kda.cli import main
from kda.media import errors, extract_video
from kda.media.backbones import he_init, seeded
from kda.media.extract import CACHE_DIR, cache_path, read_entry, source_stamp
from kda.media.labels import LabeledVideo, LabelsError, assign
from kda.media.vggish import VGGish
from kda.settings import SettingError, get_setting, list_settings

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


@pytest.mark.media
@needs_ffmpeg
@pytest.mark.parametrize("name", DECODES)
def test_every_decodable_case_gives_cls_features_of_the_right_shape(battery, name):
    features = battery[name]
    if isinstance(features, Exception):
        raise features
    assert features.visual.shape == (4096,) and features.visual.dtype == np.float32
    assert np.isfinite(features.visual).all()
    assert features.offline and any("carry no meaning" in note for note in features.all_notes)
    if CASES[name].audio:
        assert features.audio.shape == (128,) and features.has_audio
        assert features.audio.min() >= 0 and features.audio.max() <= 255
    else:
        assert features.audio is None and not features.has_audio
        assert features.audio_missing in ("no audio track", "audio unusable (CorruptMediaError)")
        assert f"{features.audio_missing}: visual-only features" in features.all_notes


@pytest.mark.media
@needs_ffmpeg
@pytest.mark.parametrize("name", FAILS)
def test_bad_cases_raise_their_specific_error(media_files, name):
    if name not in media_files:
        pytest.skip(f"this ffmpeg cannot make the {name} case")
    path = media_files[name]
    with pytest.raises(getattr(errors, CASES[name].error), match=f"^{re.escape(str(path))}: "):  # names the file
        extract_video(path, "cls", **OFFLINE)


@pytest.mark.media
@needs_ffmpeg
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


@pytest.mark.media
@needs_ffmpeg
def test_offline_features_differ_between_videos_and_weights_are_reproducible(battery):
    a, b = battery["mp4_h264_aac"], battery["avi_pcm_u8_stereo"]
    assert not np.allclose(a.audio, b.audio) and not np.allclose(a.visual, b.visual)
    first, again = (seeded(lambda: he_init(VGGish())).state_dict() for _ in range(2))
    assert all(torch.equal(first[k], again[k]) for k in first)


@pytest.mark.media
@needs_ffmpeg
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


@pytest.mark.media
@needs_ffmpeg
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


@pytest.mark.media
@needs_ffmpeg
def test_extract_resumes_without_extracting_again(extracted, labelled_folder):
    out = extracted[0]
    folder, labels, _ = labelled_folder
    before = {p: p.stat().st_mtime_ns for p in (out / ".kda-extract").rglob("*.npz")}
    code, stdout, _ = run_extract(folder, labels, out)
    assert code == 0 and "0 extracted, 9 already there" in stdout
    assert {p: p.stat().st_mtime_ns for p in (out / ".kda-extract").rglob("*.npz")} == before


@pytest.mark.media
@needs_ffmpeg
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


@pytest.mark.media
@needs_ffmpeg
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


@pytest.mark.media
@needs_ffmpeg
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


def extract_again(videos, out, *extra):
    code, stdout, stderr = run_cli(
        "extract", "--videos", videos, "--labels", videos / "labels.csv", "--out", out, "--dataset", "tiny",
        *TINY_EXTRACT, *extra,
    )  # fmt: skip
    assert code == 0, stderr
    return stdout


@pytest.fixture
def copies(tiny_videos, tiny_root, tmp_path):
    """Copies of the videos (modification times kept) and of the extracted root, free to change."""
    videos, out = tmp_path / "videos", tmp_path / "root"
    shutil.copytree(tiny_videos, videos)  # copy2: same size and mtime, so the entries still match
    shutil.copytree(tiny_root, out)
    return videos, out


def entry_of(out, filename):
    return cache_path(out, "cls", filename)


def stored(entry):
    with np.load(entry, allow_pickle=False) as data:
        return json.loads(str(data["meta"])), data["visual"].copy()


def root_row(root, modality, filename):
    """The row of `filename` in the root's HDF5 feature files of `modality` ('audio' or 'video')."""
    for path in (root / "features" / "cls_features" / modality).glob("*/*.h5"):
        with h5py.File(path, "r") as f:
            urls = [u.decode() for u in f["video_urls"]]
            if filename in urls:
                return np.asarray(f["data"][urls.index(filename)])
    raise AssertionError(f"{filename} is in no {modality} feature file of {root}")


@pytest.mark.media
@needs_ffmpeg
def test_entries_say_what_made_them(tiny_videos, tiny_root):
    for filename in TINY_SPLITS:
        meta, visual = stored(entry_of(tiny_root, filename))
        assert meta["source"] == source_stamp(tiny_videos / filename)
        params = meta["params"]
        made_with = {k: params.get(k) for k in ("setting", "weights", "max_clips", "max_examples", "frames")}
        assert made_with == {"setting": "cls", "weights": "offline", "max_clips": 1, "max_examples": 1, "frames": None}
        np.testing.assert_array_equal(visual, root_row(tiny_root, "video", filename))  # what the root was built from


@pytest.mark.media
@needs_ffmpeg
def test_same_files_and_parameters_reuse_every_entry(copies):
    videos, out = copies
    before = {p: p.stat().st_mtime_ns for p in (out / CACHE_DIR).rglob("*.npz")}
    assert len(before) == len(TINY_SPLITS)
    assert "0 extracted, 6 already there" in extract_again(videos, out)
    assert {p: p.stat().st_mtime_ns for p in (out / CACHE_DIR).rglob("*.npz")} == before


@pytest.mark.media
@needs_ffmpeg
def test_a_parameter_the_setting_does_not_use_keeps_the_entries(copies):
    videos, out = copies
    assert "0 extracted, 6 already there" in extract_again(videos, out, "--frames", "3")  # C3D takes clips


@pytest.mark.media
@needs_ffmpeg
def test_a_changed_source_file_is_recomputed(copies):
    videos, out = copies
    _, old_visual = stored(entry_of(out, "B_0.mp4"))
    write_clip(videos / "B_0.mp4", "yellow", seconds=1.0, tone=900)  # another video under the same name
    os.utime(videos / "C_0.mp4", ns=(0, (videos / "C_0.mp4").stat().st_mtime_ns + 10**9))  # same bytes, touched
    assert "2 extracted, 4 already there" in extract_again(videos, out)
    meta, new_visual = stored(entry_of(out, "B_0.mp4"))
    assert meta["source"] == source_stamp(videos / "B_0.mp4")
    assert not np.allclose(new_visual, old_visual)


@pytest.mark.media
@needs_ffmpeg
def test_damaged_entries_are_recomputed(copies):
    videos, out = copies
    entry = entry_of(out, "A_0.mp4")
    meta, visual = stored(entry)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a cut zip, as a full disk leaves it
    assert "1 extracted, 5 already there" in extract_again(videos, out)
    again_meta, again_visual = stored(entry)  # the same video, weights and parameters: the same entry again
    assert again_meta == meta
    np.testing.assert_allclose(again_visual, visual, rtol=1e-6)


@pytest.mark.media
@needs_ffmpeg
@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 not really a zip", b"\x93NUMPY", b"garbage" * 10])
def test_an_unreadable_entry_reads_as_missing(tiny_videos, tiny_root, tmp_path, damage):
    params = stored(entry_of(tiny_root, "A_0.mp4"))[0]["params"]
    entry = tmp_path / "entry.npz"
    entry.write_bytes(damage)
    assert read_entry(entry, tiny_videos / "A_0.mp4", params) is None


@pytest.mark.media
@needs_ffmpeg
@pytest.mark.parametrize(
    "change",
    [
        {"weights": "pretrained"},
        {"setting": "clip"},  # another setting is another pair of backbones
        {"max_examples": 2},
        {"max_clips": 4},
        {"max_clips": None},
        {"precision": "bf16"},
    ],
)
def test_an_entry_is_read_only_with_the_parameters_that_made_it(tiny_videos, tiny_root, change):
    entry = entry_of(tiny_root, "A_0.mp4")
    params = stored(entry)[0]["params"]
    source = tiny_videos / "A_0.mp4"
    kept = read_entry(entry, source, params)
    with np.load(entry, allow_pickle=False) as data:  # the arrays the entry holds, as they are
        np.testing.assert_array_equal(kept["visual"], data["visual"])
        np.testing.assert_array_equal(kept["audio"], data["audio"])
    assert read_entry(entry, source, {**params, **change}) is None


@pytest.mark.media
@needs_ffmpeg
def test_an_entry_of_another_file_or_a_missing_file_is_not_read(tiny_videos, tiny_root, tmp_path):
    entry = entry_of(tiny_root, "A_0.mp4")
    params = stored(entry)[0]["params"]
    assert read_entry(entry, tiny_videos / "B_0.mp4", params) is None  # another size or time
    assert read_entry(entry, tmp_path / "gone.mp4", params) is None
    away = read_entry(entry, tmp_path / "gone.mp4", params, require_source=False)  # a merge away from the videos
    np.testing.assert_array_equal(away["visual"], stored(entry)[1])
    assert read_entry(tmp_path / "no-entry.npz", tiny_videos / "A_0.mp4", params) is None
    assert cache_path(tiny_root, "clip", "A_0.mp4") != cache_path(tiny_root, "cls", "A_0.mp4")
    assert cache_path(tiny_root, "clip", "a/A_0.mp4") != cache_path(tiny_root, "clip", "b/A_0.mp4")


def features(audio=True):
    from kda.media.extract import VideoFeatures

    rng = np.random.default_rng(0)
    return VideoFeatures(
        path="v.mp4",
        setting="cls",
        audio=rng.random(128, dtype=np.float32) if audio else None,
        visual=rng.random(4096, dtype=np.float32),
        duration=1.0,
        offline=True,
        notes=["a note"],
        visual_units=(1, 2),
        audio_units=(1, 1),
    )


PARAMS = {"setting": "cls", "weights": "offline", "max_clips": 1, "max_examples": 1}


def test_entry_round_trip(tmp_path):
    from kda.media.extract import write_entry

    source = tmp_path / "v.mp4"
    source.write_bytes(b"video bytes")
    entry = cache_path(tmp_path / "out", "cls", "dir/v.mp4")
    made = features()
    written = write_entry(entry, source, PARAMS, made)
    read = read_entry(entry, source, PARAMS)
    for result in (written, read):
        np.testing.assert_array_equal(result["audio"], made.audio)
        np.testing.assert_array_equal(result["visual"], made.visual)
        assert (result["offline"], result["sampled"], result["notes"]) == (True, True, ["a note"])
        assert result["params"] == PARAMS and result["source"] == source_stamp(source)
    assert not list(entry.parent.glob("*.part*"))  # written under a temporary name, then moved
    silent = cache_path(tmp_path / "out", "cls", "silent.mp4")
    write_entry(silent, source, PARAMS, features(audio=False))
    assert read_entry(silent, source, PARAMS)["audio"] is None


@pytest.mark.parametrize("change", [{"weights": "pretrained"}, {"setting": "clip"}, {"max_clips": 2}, {"frames": 8}])
def test_entry_with_other_parameters_is_not_read(tmp_path, change):
    from kda.media.extract import write_entry

    source = tmp_path / "v.mp4"
    source.write_bytes(b"video bytes")
    entry = cache_path(tmp_path, "cls", "v.mp4")
    write_entry(entry, source, PARAMS, features())
    assert read_entry(entry, source, {**PARAMS, **change}) is None


def test_entry_of_a_changed_source_is_not_read(tmp_path):
    from kda.media.extract import write_entry

    source = tmp_path / "v.mp4"
    source.write_bytes(b"video bytes")
    entry = cache_path(tmp_path, "cls", "v.mp4")
    write_entry(entry, source, PARAMS, features())
    stamp = source.stat().st_mtime_ns
    os.utime(source, ns=(stamp, stamp + 1))  # touched: same bytes, one nanosecond later
    assert read_entry(entry, source, PARAMS) is None
    os.utime(source, ns=(stamp, stamp))
    back = read_entry(entry, source, PARAMS)  # back as it was: the written entry is read again
    np.testing.assert_array_equal(back["visual"], features().visual)
    np.testing.assert_array_equal(back["audio"], features().audio)
    source.write_bytes(b"other video")  # same length, new bytes and time
    os.utime(source, ns=(stamp, stamp))
    assert source_stamp(source) == f"{len(b'other video')}:{stamp}"
    source.write_bytes(b"a longer video file")
    os.utime(source, ns=(stamp, stamp))  # same time, another size
    assert read_entry(entry, source, PARAMS) is None
    source.unlink()
    assert read_entry(entry, source, PARAMS) is None
    np.testing.assert_array_equal(read_entry(entry, source, PARAMS, require_source=False)["visual"], features().visual)


def test_cache_paths_keep_settings_and_folders_apart(tmp_path):
    paths = {
        cache_path(tmp_path, "cls", "a/v.mp4"),
        cache_path(tmp_path, "cls", "b/v.mp4"),
        cache_path(tmp_path, "clip", "a/v.mp4"),
        cache_path(tmp_path, "cls", "a/v.mp4 "),
    }
    assert len(paths) == 4
    odd = cache_path(tmp_path, "cls", "we ird/név?.mp4")
    assert odd.parent == tmp_path / CACHE_DIR / "cls" and odd.suffix == ".npz"
    assert all(c.isalnum() or c in "-_." for c in odd.name)


def test_cache_path_is_readable_and_unique(tmp_path):
    import hashlib

    name = "dir/we ird?-a_b.mp4"  # letters, digits, '-', '_' and '.' are kept; anything else becomes '_'
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    assert cache_path(tmp_path, "cls", name) == tmp_path / CACHE_DIR / "cls" / f"we_ird_-a_b.mp4-{digest}.npz"
    long = cache_path(tmp_path, "cls", "x" * 200 + ".mp4").name
    assert long == "x" * 80 + f"-{hashlib.sha256(('x' * 200 + '.mp4').encode()).hexdigest()[:12]}.npz"


def test_entries_load_without_unpickling(tmp_path):
    from kda.media.extract import write_entry

    source = tmp_path / "v.mp4"
    source.write_bytes(b"video bytes")
    entry = cache_path(tmp_path, "cls", "silent.mp4")
    write_entry(entry, source, PARAMS, features(audio=False))
    with np.load(entry, allow_pickle=False) as data:  # every array; a video without audio stores none
        assert {name: data[name].dtype.kind for name in data.files} == {"visual": "f", "meta": "U"}
    # An entry whose arrays need unpickling (a file from elsewhere) is never loaded, so never executed.
    meta = json.dumps({"params": PARAMS, "source": source_stamp(source), "has_audio": False})
    np.savez(entry, visual=np.zeros(4096), meta=np.array(meta, dtype=object))
    assert read_entry(entry, source, PARAMS) is None
