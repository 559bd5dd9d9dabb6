import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kda.benchmark import load_benchmark
from kda.checkpoint import Checkpoint, ClassEntry
from kda.errors import KdaError
from kda.knowledge import TINY_TEXT_ENCODER, ClassMatrixBuilder, encode_knowledge, load_text_encoder
from kda.knowledge.class_matrix import ClassMatrix, KnowledgeMismatchError, load_class_matrix, save_class_matrix
from kda.knowledge.store import ClassKnowledge, Description, Knowledge
from kda.losses import loss_preset
from kda.model import DimensionMismatchError, KDAModel
from kda.settings import get_setting
from kda.studio import Studio
from kda.train import TrainConfig, train

ASSETS = Path(__file__).resolve().parents[3] / "assets" / "knowledge"


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_vector_files_round_trip_and_bind_by_name(tmp_path, suffix):
    names = ["b", "a", "C"]
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    loaded = load_class_matrix(save_class_matrix(tmp_path / f"k{suffix}", names, vectors, "enc-x"))
    assert loaded.encoder == "enc-x" and loaded.names == names
    bound = loaded.bind(["a", "c", "b"])  # other order, other case
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)  # t_c are L2-normalised on load
    np.testing.assert_allclose(bound.vectors, unit[[1, 2, 0]], rtol=1e-6)
    assert bound.knowledge is None and bound.text_vectors is None  # vectors only


def test_npz_without_an_encoder_is_precomputed_and_raw_vectors_are_float32(tmp_path):
    np.savez(tmp_path / "k.npz", names=np.array(["a", "b"]), embeddings=np.array([[3.0, 4.0], [1.0, 0.0]]))
    raw = load_class_matrix(tmp_path / "k.npz", form="raw-mean")
    assert raw.encoder == "precomputed" and raw.vectors.dtype == np.float32
    np.testing.assert_array_equal(raw.vectors, [[3.0, 4.0], [1.0, 0.0]])  # raw: as stored, not normalised


def test_descriptions_file_is_encoded_and_bound_with_its_texts(ucf_synth):
    from kda.knowledge import TINY_TEXT_ENCODER, load_knowledge, load_text_encoder

    bench = load_benchmark(ucf_synth, "UCF", "cls")
    kv = load_class_matrix(ASSETS / "ucf.json", TINY_TEXT_ENCODER).bind(bench.classes, known=bench.all_classes)
    assert kv.encoder == TINY_TEXT_ENCODER and kv.names == bench.classes
    assert kv.vectors.shape == (48, 512)
    np.testing.assert_allclose(np.linalg.norm(kv.vectors, axis=1), 1.0, rtol=1e-5)
    texts = kv.knowledge.texts("ApplyEyeMakeup")
    assert texts[0] == "Apply Eye Makeup" and len(texts) == 4  # name + three descriptions
    # t_c is the normalised mean of the class's encoded texts, in its class's row (first and last: a shift shows)
    encoder = load_text_encoder(TINY_TEXT_ENCODER)
    for row in (0, len(bench.classes) - 1):
        mean = encoder.encode(kv.knowledge.texts(bench.classes[row])).mean(axis=0)
        np.testing.assert_allclose(kv.vectors[row], mean / np.linalg.norm(mean), atol=1e-6)
    # every bound class's texts keep their own vectors (what an edit starts from), and only those
    assert (kv.text_vectors.encoder, kv.text_vectors.fingerprint) == (TINY_TEXT_ENCODER, encoder.fingerprint())
    source = load_knowledge(ASSETS / "ucf.json")
    assert (kv.knowledge.class_set, kv.knowledge.provenance) == (source.class_set, source.provenance)
    assert kv.knowledge.source == str(ASSETS / "ucf.json")
    without = ClassMatrix(kv.names, kv.vectors, kv.encoder, kv.knowledge)  # texts, but no per-text vectors
    assert without.bind(bench.classes[:3], known=bench.classes).text_vectors is None
    bound_texts = {t for c in kv.names for t in kv.knowledge.texts(c)}
    assert set(kv.text_vectors.vectors) == bound_texts
    np.testing.assert_allclose(kv.text_vectors.vectors[texts[1]], encoder.encode([texts[1]])[0], atol=1e-6)


def test_missing_and_unknown_classes_are_named(tmp_path):
    kv = load_class_matrix(save_class_matrix(tmp_path / "k.npz", ["a", "b", "zebra"], np.ones((3, 2))))
    with pytest.raises(
        KnowledgeMismatchError, match=r"no knowledge for 1 classes: c; knowledge for 1 unknown classes: zebra"
    ):
        kv.bind(["a", "b", "c"])
    many = load_class_matrix(save_class_matrix(tmp_path / "m.npz", [f"k{i}" for i in range(9)], np.ones((9, 2))))
    wanted = [f"w{i}" for i in range(9)]  # nine missing and nine unknown: the first eight of each are named
    with pytest.raises(
        KnowledgeMismatchError,
        match=r"^no knowledge for 9 classes: w0, w1, w2, w3, w4, w5, w6, w7; "
        r"knowledge for 9 unknown classes: k0, k1, k2, k3, k4, k5, k6, k7$",
    ):
        many.bind(wanted)
    assert kv.bind(["a", "b"], known=["a", "b", "zebra"]).names == ["a", "b"]  # extra known classes are fine


def test_unreadable_knowledge_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(KdaError, match="not valid JSON"):
        load_class_matrix(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(KdaError, match="neither a knowledge file"):
        load_class_matrix(tmp_path / "other.json")
    np.savez(tmp_path / "x.npz", foo=np.ones(2))
    with pytest.raises(KdaError, match="lacks arrays"):
        load_class_matrix(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match=r"knowledge file .*absent.npz does not exist"):
        load_class_matrix(tmp_path / "absent.npz")
    np.savez(tmp_path / "pickled.npz", names=np.array(["a", "b"], dtype=object), embeddings=np.ones((2, 3)))
    with pytest.raises(KdaError, match=r"pickled.npz is not a readable .npz embeddings file \(Object arrays cannot"):
        load_class_matrix(tmp_path / "pickled.npz")  # never unpickled: a file from elsewhere could run code
    (tmp_path / "cut.npz").write_bytes((tmp_path / "pickled.npz").read_bytes()[:100])
    with pytest.raises(KdaError, match=r"cut.npz is not a readable .npz embeddings file"):
        load_class_matrix(tmp_path / "cut.npz")


def test_feature_dims_that_do_not_fit_the_model(tmp_path, ucf_synth):
    # cls features (128/4096) presented as the main setting (512/512).
    root = tmp_path / "ucf"
    shutil.copytree(ucf_synth, root)
    (root / "class-split/cls_split").rename(root / "class-split/main_split")
    (root / "features/cls_features").rename(root / "features/main_features")
    bench = load_benchmark(root, "UCF", "main")
    kv = load_class_matrix(root / "knowledge_vectors.npz").bind(bench.classes, known=bench.all_classes)
    expected = f"benchmark at {root} has audio/visual features of 128/4096 dims but the model expects 512/512"
    with pytest.raises(DimensionMismatchError, match=re.escape(expected)):
        train(bench, kv, get_setting("main").model_config(), loss_preset("kda"), TrainConfig(epochs=1), progress=False)


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


def test_the_text_cache_keeps_the_checkpoints_texts_and_a_bounded_number_of_others(monkeypatch):
    from kda.knowledge import class_matrix
    from kda.knowledge.class_matrix import ClassMatrixBuilder, TextVectors
    from kda.knowledge.encoders import TINY_TEXT_ENCODER, load_text_encoder

    monkeypatch.setattr(class_matrix, "RECENT_TEXTS", 3)
    encoder = load_text_encoder(TINY_TEXT_ENCODER)
    builder = ClassMatrixBuilder(encoder)
    shipped = {"Archery": encoder.encode(["Archery"])[0]}
    assert builder.seed(TextVectors(encoder.id, encoder.fingerprint(), shipped, "unit"))
    for text in ["one", "two", "three", "four", "two"]:
        builder.text_vectors([text])
    assert list(builder.recent) == ["three", "four", "two"]  # "one", least recently used, made room
    assert builder.text_vectors(["Archery", "one"])[1] == 1  # the checkpoint's text stays; "one" is encoded again
    assert len(builder.recent) == 3 and "Archery" in builder.vectors
