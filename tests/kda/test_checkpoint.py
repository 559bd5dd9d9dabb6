import json
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from kda.checkpoint import (
    Checkpoint,
    CheckpointError,
    ClassEntry,
    ReferenceSamples,
    load_checkpoint,
    save_checkpoint,
)
from kda.knowledge.store import ClassKnowledge, Description, Knowledge
from kda.model import KDAModel
from kda.settings import get_setting


def make_checkpoint(setting="main"):
    torch.manual_seed(0)
    model = KDAModel(get_setting(setting).model_config())
    model.fit_input_norm(np.random.rand(16, model.cfg.audio_dim) * 255, np.random.rand(16, model.cfg.visual_dim))
    classes = [ClassEntry("a", "A", True), ClassEntry("b", "B", True), ClassEntry("c", "C", False)]
    knowledge = np.random.default_rng(0).normal(size=(3, 512)).astype(np.float32)
    texts = Knowledge(
        "abc",
        {c.id: ClassKnowledge(c.name, (Description("visual", f"{c.name} looks like {c.id}"),)) for c in classes},
        {"author": "test", "prompts": {"visual": "What is the visual appearance of X?"}},
    )
    samples = ReferenceSamples(
        np.random.rand(4, model.cfg.audio_dim).astype(np.float32),
        np.random.rand(4, model.cfg.visual_dim).astype(np.float32),
        np.array([0, 1, 2, 2]),
        ["u0", "u1", "u2", "u3"],
    )
    return Checkpoint(model, setting, "precomputed", classes, knowledge, beta=0.4, knowledge=texts, samples=samples)


def predictions(ckpt, audio, visual):
    with torch.no_grad():
        rho = ckpt.model.eval()(audio, visual)
        d = torch.cdist(rho, torch.from_numpy(ckpt.class_matrix)) + ckpt.beta * torch.from_numpy(ckpt.seen_mask)
    return d.argmin(1), d


def test_round_trip_gives_identical_predictions(tmp_path):
    ckpt = make_checkpoint()
    save_checkpoint(ckpt, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    audio, visual = torch.rand(10, 512) * 3, torch.rand(10, 512)
    p0, d0 = predictions(ckpt, audio, visual)
    p1, d1 = predictions(loaded, audio, visual)
    assert torch.equal(p0, p1) and torch.equal(d0, d1)  # float32 in, float32 out: bit for bit
    saved, restored = ckpt.model.state_dict(), loaded.model.state_dict()
    assert list(restored) == list(saved) and all(torch.equal(restored[k], saved[k]) for k in saved)
    np.testing.assert_array_equal(loaded.class_matrix, ckpt.class_matrix)
    assert loaded.class_ids == ["a", "b", "c"] and loaded.seen_mask.tolist() == [True, True, False]
    assert loaded.beta == 0.4 and loaded.setting == "main"
    assert loaded.texts == {"a": ["A", "A looks like a"], "b": ["B", "B looks like b"], "c": ["C", "C looks like c"]}
    assert loaded.knowledge.to_json() == ckpt.knowledge.to_json()  # aspects and provenance too
    assert loaded.model.cfg == ckpt.model.cfg
    np.testing.assert_array_equal(loaded.samples.visual, ckpt.samples.visual)
    assert loaded.samples.labels.tolist() == [0, 1, 2, 2] and loaded.samples.urls == ["u0", "u1", "u2", "u3"]


def test_older_checkpoints_with_texts_only_still_load(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    (tmp_path / "ck" / "samples.safetensors").unlink()
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["knowledge"] = {"texts": {"a": ["A", "intro a", "looks a", "sounds a"], "b": ["B"], "c": ["C", "x"]}}
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.samples is None
    assert [d.aspect for d in loaded.knowledge.get("a").descriptions] == ["introduction", "visual", "auditory"]
    assert loaded.texts["c"] == ["C", "x"]


def test_knowledge_and_samples_must_match_the_classes(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["knowledge"]["classes"]["d"] = config["knowledge"]["classes"].pop("c")
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"other classes than 'classes' \(missing \['c'\], unknown \['d'\]\)"):
        load_checkpoint(tmp_path / "ck")
    ckpt = make_checkpoint()
    ckpt.samples.labels = np.array([0, 1, 2, 3])  # class 3 does not exist
    save_checkpoint(ckpt, tmp_path / "ck2")
    with pytest.raises(CheckpointError, match="samples.safetensors does not match the checkpoint"):
        load_checkpoint(tmp_path / "ck2")


def test_mismatch_errors_name_what_differs(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")

    bad = tmp_path / "dims"
    shutil.copytree(tmp_path / "ck", bad)
    config = json.loads((bad / "config.json").read_text())
    config["model"]["visual_dim"] = 4096
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=r"visual_encoder\.0\.weight: file \(1024, 512\) vs config \(1024, 4096\)"
    ):
        load_checkpoint(bad)

    bad = tmp_path / "classes"
    shutil.copytree(tmp_path / "ck", bad)
    config = json.loads((bad / "config.json").read_text())
    config["classes"] = config["classes"][:2]
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="2 classes .* a class matrix of shape \\(3, 512\\)"):
        load_checkpoint(bad)

    bad = tmp_path / "missing"
    shutil.copytree(tmp_path / "ck", bad)
    tensors = load_file(str(bad / "model.safetensors"))
    del tensors["embedding.weight"]
    save_file(tensors, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing tensors \\['embedding.weight'\\]"):
        load_checkpoint(bad)


def test_unreadable_or_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match=rf"^checkpoint {re.escape(str(tmp_path / 'nope'))} is not a folder"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(tmp_path))} has no config.json"):
        load_checkpoint(tmp_path)
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"\x80\x04pickle?")
    model = re.escape(str(tmp_path / "ck" / "model.safetensors"))
    # the reason is safetensors' own: the pickle's first bytes are no header
    with pytest.raises(CheckpointError, match=rf"^cannot read {model}: Error while deserializing header"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match=r"config.json: format 'something-else' is not 'kda-checkpoint/1'$"):
        load_checkpoint(tmp_path / "ck")
