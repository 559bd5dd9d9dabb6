"""Caches that must never hand back stale results: `kda extract`'s per-video entries (reused only for the same
source file and the same parameters; a damaged entry is made again) and the knowledge-embedding caches (the
embedding cache, and the per-text vectors a checkpoint carries), which must not serve another encoder's
vectors."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY_EXTRACT, TINY_SPLITS, run_cli
from media_factory import needs_ffmpeg, write_clip

from kda.checkpoint import Checkpoint, ClassEntry
from kda.knowledge import TINY_TEXT_ENCODER, ClassMatrixBuilder, encode_knowledge, load_text_encoder
from kda.knowledge.store import ClassKnowledge, Description, Knowledge
from kda.media.extract import CACHE_DIR, cache_path, read_entry, source_stamp
from kda.model import KDAModel
from kda.settings import get_setting
from kda.studio import Studio


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


# -- the extraction cache ----------------------------------------------------------------------------------


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


# -- the knowledge-embedding caches --------------------------------------------------------------------------

TEXTS = ["Archery", "An archer draws a bow.", "The twang of a bowstring."]


@pytest.fixture(scope="module")
def encoders():
    """Two encoders, and a third with the first one's id but the second one's weights (a changed model)."""
    first, second = load_text_encoder(TINY_TEXT_ENCODER), load_text_encoder("kda-tiny-text@random:1")
    impostor = load_text_encoder("kda-tiny-text@random:1")
    impostor.id = first.id
    return first, second, impostor


def test_a_builder_encodes_each_text_once_in_its_own_encoder_and_form(encoders):
    first, second, _ = encoders
    builder = ClassMatrixBuilder(first)
    a, encoded = builder.text_vectors(TEXTS)
    np.testing.assert_array_equal(a, first.encode(TEXTS))
    assert encoded == 3
    again, encoded = builder.text_vectors(TEXTS[::-1])
    np.testing.assert_array_equal(again, a[::-1])
    assert encoded == 0 and builder.texts_encoded == 3
    other, _ = ClassMatrixBuilder(second).text_vectors(TEXTS)
    np.testing.assert_array_equal(other, second.encode(TEXTS))
    raw, _ = ClassMatrixBuilder(first, "raw-mean").text_vectors(TEXTS)
    np.testing.assert_allclose(raw, first.encode(TEXTS, normalize=False), atol=1e-6)


def checkpoint_with_text_vectors(encoder) -> Checkpoint:
    torch.manual_seed(0)
    model = KDAModel(get_setting("clip").model_config(embed_dim=encoder.dim))
    model.fit_input_norm(np.random.rand(8, 128) * 255, np.random.rand(8, 512))
    classes = [ClassEntry("Archery", "Archery", True), ClassEntry("Bowling", "Bowling", False)]
    knowledge = Knowledge(
        "mini",
        {
            "Archery": ClassKnowledge("Archery", (Description("visual", TEXTS[1]), Description("auditory", TEXTS[2]))),
            "Bowling": ClassKnowledge("Bowling", (Description("visual", "A ball rolls at ten pins."),)),
        },
        {"author": "test"},
    )
    matrix = encode_knowledge(knowledge, encoder)
    return Checkpoint(
        model, "clip", encoder.id, classes, matrix.vectors, knowledge=knowledge, text_vectors=matrix.text_vectors
    )


def test_a_checkpoints_text_vectors_seed_the_builder_only_for_the_weights_and_form_that_made_them(encoders):
    first, _, impostor = encoders
    ckpt = checkpoint_with_text_vectors(first)
    same = Studio(ckpt, text_encoder=first)
    assert len(same.builder.vectors) == 5
    session = same.new_session()
    session.edit("Archery", [TEXTS[1], "A new sentence about archery."])
    assert session.last_encoded == 1  # the name and the kept description come from the checkpoint

    changed = Studio(ckpt, text_encoder=impostor)
    assert len(changed.builder.vectors) == 0
    session = changed.new_session()
    session.edit("Archery", [TEXTS[1], "A new sentence about archery."])
    assert session.last_encoded == 3  # every text again: the checkpoint's vectors came from other weights
    t = impostor.encode(["Archery", TEXTS[1], "A new sentence about archery."]).mean(axis=0)
    np.testing.assert_allclose(session.class_matrix[0], t / np.linalg.norm(t), atol=1e-6)
    ckpt.class_matrix_form = "raw-mean"  # stored vectors of the other form are not taken either
    assert len(Studio(ckpt, text_encoder=first).builder.vectors) == 0


# -- the extraction cache's entries, without extracting (what `make mutants` runs) ------------------------------


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
