"""Text encoders (open_clip CLIP text towers on offline weights) and the class rows a builder makes from texts."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from kda.knowledge import (
    DEFAULT_TEXT_ENCODER,
    OFFLINE_TEXT_ENCODER,
    TINY_TEXT_ENCODER,
    ClassMatrixBuilder,
    TextEncoderError,
    load_knowledge,
    load_text_encoder,
    parse_spec,
)
from kda.knowledge.encoders import CONFIGS, encode_tokens

UCF = Path(__file__).resolve().parents[3] / "assets" / "knowledge" / "ucf.json"


@pytest.fixture(scope="module")
def tiny():
    return load_text_encoder(TINY_TEXT_ENCODER)


@pytest.fixture(scope="module")
def vit():
    return load_text_encoder(OFFLINE_TEXT_ENCODER)


def test_spec_ids_round_trip(tmp_path):
    assert DEFAULT_TEXT_ENCODER == "ViT-B-32-quickgelu@openai"
    for spec in (DEFAULT_TEXT_ENCODER, OFFLINE_TEXT_ENCODER, "hf-hub:timm/vit_base_patch32_clip_224.openai"):
        assert parse_spec(spec).id == spec
    assert parse_spec("ViT-B-32-quickgelu@random:007").id == "ViT-B-32-quickgelu@random:7"
    assert parse_spec("ViT-B-32@file:w.bin#sha256:ABC").id == f"ViT-B-32@file:{Path('w.bin').resolve()}#sha256:abc"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ViT-B-32-quickgelu", "expected ARCH@WEIGHTS"),
        ("ViT-B-32-quickgelu@random:x", "must be a non-negative integer"),
        ("ViT-B-23@openai", "unknown text encoder architecture 'ViT-B-23'; did you mean"),
        ("ViT-B-32-quickgelu@file:/no/such/weights.bin", "does not exist"),
        ("kda-tiny-text@openai", "kda config without published weights"),
        ("hf-hub:not a repo", "expected hf-hub:ORG/REPO"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(TextEncoderError, match=message):
        load_text_encoder(spec)


def test_offline_vit_b_32_is_the_clip_text_tower(vit):
    assert vit.id == OFFLINE_TEXT_ENCODER and vit.offline and vit.dim == 512
    assert "random weights" in vit.description and "no meaning" in vit.description
    assert vit.model.transformer.width == 512 and len(vit.model.transformer.resblocks) == 12
    vectors = vit.encode(["Archery", "A bow and an arrow.", ""])
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_trimmed_padding_gives_the_same_features_as_encode_text(vit):
    tokens = vit.tokenizer(["Archery", "A close-up of a face near a mirror, a brush moving along the eyelid."])
    with torch.inference_mode():
        np.testing.assert_allclose(encode_tokens(vit.model, tokens), vit.model.encode_text(tokens), atol=1e-5)


def test_the_id_rebuilds_the_same_encoder(tiny):
    again = load_text_encoder(tiny.id)
    texts = ["Archery", "Blowing candles on a cake."]
    np.testing.assert_array_equal(again.encode(texts), tiny.encode(texts))
    state = torch.get_rng_state()
    other_seed = load_text_encoder("kda-tiny-text@random:1")
    assert torch.equal(state, torch.get_rng_state())  # seeding was local: the caller's generator is untouched
    assert not np.allclose(other_seed.encode(texts), tiny.encode(texts))


def test_local_weights_file_is_checked_by_digest(tiny, tmp_path):
    import open_clip

    path = tmp_path / "weights.pt"
    model = open_clip.CLIP(**CONFIGS["kda-tiny-text"])  # with a vision tower, as open_clip files have
    model.load_state_dict({**model.state_dict(), **tiny.model.state_dict()})
    torch.save(model.state_dict(), path)
    from_file = load_text_encoder(f"kda-tiny-text@file:{path}")
    assert from_file.id.startswith(f"kda-tiny-text@file:{path}#sha256:") and not from_file.offline
    np.testing.assert_allclose(from_file.encode(["Archery"]), tiny.encode(["Archery"]), atol=1e-6)
    torch.save({k: v + 1 for k, v in model.state_dict().items()}, path)
    with pytest.raises(TextEncoderError, match="the file changed"):
        load_text_encoder(from_file.id)


# -- class rows --------------------------------------------------------------------------------


def test_a_class_row_is_the_normalised_mean_of_name_and_descriptions(tiny):
    knowledge = load_knowledge(UCF)
    rows, encoded = ClassMatrixBuilder(tiny).rows(knowledge, ["Archery"])
    mean = tiny.encode(knowledge.texts("Archery")).mean(0)
    assert len(knowledge.texts("Archery")) == 4 and knowledge.texts("Archery")[0] == "Archery" and encoded == 4
    assert np.linalg.norm(mean) < 0.99  # a mean of distinct unit vectors is shorter, so normalising matters
    np.testing.assert_allclose(rows["Archery"], mean / np.linalg.norm(mean), atol=1e-6)


def test_a_second_build_encodes_nothing_and_an_edit_encodes_one_text(tiny):
    knowledge = load_knowledge(UCF)
    builder = ClassMatrixBuilder(tiny)
    first, encoded = builder.rows(knowledge)
    total = sum(len(knowledge.texts(c)) for c in knowledge.class_ids)
    distinct = len({t for c in knowledge.class_ids for t in knowledge.texts(c)})
    assert len(first) == 101 and total == 404 and encoded == distinct

    calls = tiny.calls
    second, encoded = builder.rows(knowledge)
    assert tiny.calls == calls and encoded == 0  # every text encoded before
    assert all(np.array_equal(first[c], second[c]) for c in first)

    entry = knowledge.get("Archery")
    edited = replace(entry.descriptions[1], text="An archer in a green field draws a long bow toward a round target.")
    knowledge.set_class(
        "Archery", replace(entry, descriptions=(entry.descriptions[0], edited, *entry.descriptions[2:]))
    )
    third, encoded = builder.rows(knowledge)
    assert encoded == 1 and tiny.calls == calls + 1
    assert [c for c in first if not np.array_equal(first[c], third[c])] == ["Archery"]
