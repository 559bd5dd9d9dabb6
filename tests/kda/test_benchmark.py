import shutil

import h5py
import numpy as np
import pytest

from kda.benchmark import (
    BenchmarkError,
    builtin_classes,
    class_key,
    load_benchmark,
    split_lists_from_roles,
)
from kda.synth import SynthConfig, write_synthetic_benchmark

# Class counts of the public splits (seen-train / val-unseen / test-seen / test-unseen), from docs/METHOD.md.
COUNTS = {
    ("VGGSound", "main"): (138, 69, 207, 69),
    ("VGGSound", "cls"): (138, 69, 207, 64),
    ("UCF", "main"): (30, 12, 42, 9),
    ("UCF", "cls"): (30, 12, 42, 6),
    ("ActivityNet", "main"): (99, 51, 150, 50),
    ("ActivityNet", "cls"): (99, 51, 150, 48),
}


@pytest.mark.parametrize("dataset,setting", list(COUNTS))
def test_builtin_split_roles_reproduce_the_public_class_counts(dataset, setting):
    splits = split_lists_from_roles(builtin_classes(dataset), setting)
    got = tuple(
        len(splits[s]) for s in ("stage_1_train", "stage_1_val_unseen", "stage_2_test_seen", "stage_2_test_unseen")
    )
    assert got == COUNTS[dataset, setting]
    assert splits["stage_1_val_seen"] == splits["stage_1_train"]


def test_builtin_classes_have_readable_names():
    ucf = {c.id: c.name for c in builtin_classes("UCF")}
    assert len(ucf) == 101 and ucf["ApplyEyeMakeup"] == "Apply Eye Makeup"
    vgg = {c.id: c.name for c in builtin_classes("VGGSound")}
    assert len(vgg) == 309 and vgg["bird chirping, tweeting"] == "bird chirping"
    assert len(builtin_classes("ActivityNet")) == 200


def test_reads_synthetic_root_in_both_stages(ucf_synth):
    bench = load_benchmark(ucf_synth, "UCF", "cls")
    assert bench.dims == (128, 4096)
    s1, s2 = bench.stage(1), bench.stage(2)
    assert len(s1.seen) == 30 and len(s1.unseen) == 12 and len(s2.seen) == 42 and len(s2.unseen) == 6
    assert set(s1.train.labels.tolist()) == set(s1.seen)
    assert set(s1.evaluation.labels.tolist()) == set(s1.seen) | set(s1.unseen)
    assert set(s2.train.labels.tolist()) == set(s2.seen)  # stage 2 trains on all of stage 1
    assert set(s2.evaluation.labels.tolist()) == set(s2.seen) | set(s2.unseen)
    assert s1.train.audio.min() >= 0 and s1.train.audio.max() <= 255  # 8-bit averages
    assert s1.train.visual.min() >= 0  # ReLU activations


def test_matches_class_names_case_insensitively(tmp_path, ucf_synth):
    root = tmp_path / "ucf"
    shutil.copytree(ucf_synth, root)
    split = root / "class-split" / "cls_split" / "stage_1_train.txt"
    assert "HandstandPushups" in split.read_text()
    split.write_text(split.read_text().replace("HandstandPushups", "HandStandPushups"))  # the public quirk
    (root / "class-split/cls_split/stage_1_val_seen.txt").write_text(split.read_text())
    bench = load_benchmark(root, "UCF", "cls")
    assert "HandstandPushups" in bench.splits["stage_1_train"]
    assert class_key("HandStandPushups") == class_key("HandstandPushups")


def test_reader_errors(tmp_path, ucf_synth):
    with pytest.raises(BenchmarkError, match="not an AVCA dataset root"):
        load_benchmark(tmp_path, "UCF", "cls")
    with pytest.raises(BenchmarkError, match="choose one of"):
        load_benchmark(ucf_synth, "Kinetics", "cls")
    with pytest.raises(BenchmarkError, match="choose one of"):
        load_benchmark(ucf_synth, "UCF", "selavi")
    shutil.copytree(ucf_synth / "class-split", tmp_path / "parent" / "UCF" / "class-split")
    with pytest.raises(BenchmarkError, match="did you mean .*UCF"):
        load_benchmark(tmp_path / "parent", "UCF", "cls")

    root = tmp_path / "broken"
    shutil.copytree(ucf_synth, root)
    (root / "class-split/cls_split/stage_2_test_unseen.txt").unlink()
    with pytest.raises(BenchmarkError, match="missing class list .*stage_2_test_unseen.txt"):
        load_benchmark(root, "UCF", "cls")

    root = tmp_path / "unknown"
    shutil.copytree(ucf_synth, root)
    (root / "class-split/cls_split/stage_1_train.txt").write_text("NotAClass\n")
    with pytest.raises(BenchmarkError, match="NotAClass"):
        load_benchmark(root, "UCF", "cls")

    root = tmp_path / "nofeatures"
    shutil.copytree(ucf_synth, root)
    shutil.rmtree(root / "features/cls_features/video/stage_1_val_unseen")
    with pytest.raises(BenchmarkError, match="missing feature folder"):
        load_benchmark(root, "UCF", "cls").stage(1)

    root = tmp_path / "badfile"
    shutil.copytree(ucf_synth, root)
    victim = next((root / "features/cls_features/audio/stage_1_train").glob("*.h5"))
    victim.write_bytes(b"not hdf5")
    with pytest.raises(BenchmarkError, match="cannot read"):
        load_benchmark(root, "UCF", "cls").stage(1)


def test_audio_and_video_rows_are_matched_by_url(tmp_path, ucf_synth):
    root = tmp_path / "shuffled"
    shutil.copytree(ucf_synth, root)
    path = next((root / "features/cls_features/video/stage_1_train").glob("*.h5"))
    with h5py.File(path, "r") as f:
        data, urls = np.asarray(f["data"]), list(f["video_urls"])
    with h5py.File(path, "w") as f:
        f["data"] = data[::-1]
        f["video_urls"] = urls[::-1]
    original = load_benchmark(ucf_synth, "UCF", "cls").read_folder("stage_1_train")
    shuffled = load_benchmark(root, "UCF", "cls").read_folder("stage_1_train")
    np.testing.assert_array_equal(original.visual, shuffled.visual)


@pytest.mark.parametrize("dataset,setting", [("VGGSound", "main"), ("ActivityNet", "cls")])
def test_synthetic_roots_of_other_benchmarks(tmp_path, dataset, setting):
    summary = write_synthetic_benchmark(tmp_path, dataset, setting, SynthConfig(train_videos=2, eval_videos=1))
    bench = load_benchmark(tmp_path, dataset, setting)
    counts = COUNTS[dataset, setting]
    assert len(bench.stage(2).seen) == counts[2] and len(bench.stage(2).unseen) == counts[3]
    assert summary.knowledge == tmp_path / "knowledge_vectors.npz"
    with np.load(summary.knowledge) as knowledge:  # one unit t_c per class of the benchmark, by name
        assert knowledge["names"].tolist() == [c.id for c in builtin_classes(dataset)]
        assert knowledge["embeddings"].shape == (len(knowledge["names"]), 512)
        np.testing.assert_allclose(np.linalg.norm(knowledge["embeddings"], axis=1), 1, atol=1e-5)


def test_synthetic_root_with_given_folder_sizes(tmp_path):
    sizes = {"stage_1_train": 61, "stage_1_val_seen": 30, "stage_1_val_unseen": 13, "stage_2_test_seen": 43,
             "stage_2_test_unseen": 7}  # fmt: skip
    write_synthetic_benchmark(tmp_path, "UCF", "cls", SynthConfig(folder_videos=sizes))
    bench = load_benchmark(tmp_path, "UCF", "cls")
    for folder, total in sizes.items():
        videos = bench.read_folder(folder)
        per_class = np.bincount(videos.labels)[np.unique(videos.labels)]
        assert len(videos) == total and per_class.max() - per_class.min() <= 1  # spread evenly over its classes


@pytest.fixture
def root(ucf_synth, tmp_path):
    copy = tmp_path / "ucf"
    shutil.copytree(ucf_synth, copy)
    return copy


def first_file(root, modality="audio", folder="stage_1_train"):
    return sorted((root / "features/cls_features" / modality / folder).glob("*.h5"))[0]


def read_stage_1(root):
    return load_benchmark(root, "UCF", "cls").stage(1)


def test_feature_file_of_a_class_in_no_split(root):
    shutil.copy(first_file(root), root / "features/cls_features/audio/stage_1_train/Quidditch.h5")
    with pytest.raises(BenchmarkError, match=r"Quidditch.h5 names a class that is in no class split"):
        read_stage_1(root)


def test_audio_without_video(root):
    audio = first_file(root)
    (root / "features/cls_features/video/stage_1_train" / audio.name).unlink()
    with pytest.raises(BenchmarkError, match=rf"audio features .*{audio.name} have no video features at"):
        read_stage_1(root)


def test_video_file_missing_urls_of_the_audio_file(root):
    video = first_file(root, "video")
    with h5py.File(video, "r") as f:
        data, urls = np.asarray(f["data"]), list(f["video_urls"])
    with h5py.File(video, "w") as f:
        f["data"] = data[1:]
        f["video_urls"] = urls[1:]
    missing = urls[0].decode()
    with pytest.raises(BenchmarkError, match=rf"{video.name} lacks 1 videos present in audio, e.g. {missing}"):
        read_stage_1(root)


@pytest.mark.parametrize(("data", "urls"), [(np.zeros(3), ["a", "b", "c"]), (np.zeros((3, 128)), ["a", "b"])])
def test_feature_file_of_the_wrong_shape(root, data, urls):
    path = first_file(root)
    with h5py.File(path, "w") as f:
        f["data"] = data
        f["video_urls"] = [u.encode() for u in urls]
    with pytest.raises(BenchmarkError, match=r"'data' must be \(N, D\) with one URL per row, got \(3.*\), [23] URLs"):
        read_stage_1(root)


def test_empty_feature_folder(root):
    for path in (root / "features/cls_features/audio/stage_1_train").glob("*.h5"):
        path.unlink()
    with pytest.raises(BenchmarkError, match=r"no feature files in .*audio/stage_1_train"):
        read_stage_1(root)
    with pytest.raises(BenchmarkError, match=r"no feature files in .*audio/stage_1_train"):
        load_benchmark(root, "UCF", "cls").dims  # noqa: B018 (a property that reads the files)
