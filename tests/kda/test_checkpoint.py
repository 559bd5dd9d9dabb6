import json
import re
import shutil

import numpy as np
import pytest
import torch
from checkpoint_factory import TEXTS, forget_digests, make_checkpoint, with_text_vectors
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from kda.checkpoint import (
    CheckpointError,
    ReferenceSamples,
    load_checkpoint,
    save_checkpoint,
)
from kda.knowledge.class_matrix import TextVectors
from kda.metrics import GZSLResult


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
    forget_digests(tmp_path / "ck")

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
    forget_digests(tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"\x80\x04pickle?")
    model = re.escape(str(tmp_path / "ck" / "model.safetensors"))
    # the reason is safetensors' own: the pickle's first bytes are no header
    with pytest.raises(CheckpointError, match=rf"^cannot read {model}: Error while deserializing header"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match=r"config.json: format 'something-else' is not 'kda-checkpoint/1'$"):
        load_checkpoint(tmp_path / "ck")


def test_text_vectors_round_trip(tmp_path):
    ckpt = with_text_vectors()
    save_checkpoint(ckpt, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck").text_vectors
    assert (loaded.encoder, loaded.fingerprint) == ("enc-x", "f1nger")
    assert list(loaded.vectors) == TEXTS
    for text in TEXTS:
        assert loaded.vectors[text].dtype == np.float32
        np.testing.assert_array_equal(loaded.vectors[text], ckpt.text_vectors.vectors[text].astype(np.float32))
    ckpt.text_vectors = None  # saving again without them removes the stale file
    save_checkpoint(ckpt, tmp_path / "ck")
    assert load_checkpoint(tmp_path / "ck").text_vectors is None
    assert not (tmp_path / "ck" / "text_embeddings.safetensors").exists()


def test_empty_text_vectors_write_no_file(tmp_path):
    ckpt = make_checkpoint()
    ckpt.text_vectors = TextVectors("enc-x", "f", {})
    save_checkpoint(ckpt, tmp_path / "ck")
    assert not (tmp_path / "ck" / "text_embeddings.safetensors").exists()


def damaged_text_vectors(tmp_path, tensors=None, metadata=None, raw=None):
    save_checkpoint(with_text_vectors(), tmp_path / "ck")
    forget_digests(tmp_path / "ck")
    path = tmp_path / "ck" / "text_embeddings.safetensors"
    if raw is not None:
        path.write_bytes(raw)
    else:
        save_file(tensors, str(path), metadata=metadata)
    return tmp_path / "ck"


@pytest.mark.parametrize(
    ("tensors", "metadata", "reason"),
    [
        ({"vectors": torch.zeros(2, 4)}, {"encoder": "e", "texts": json.dumps(["one"])}, "1 texts for 2 vectors"),
        ({"vectors": torch.zeros(1, 4)}, {"texts": json.dumps(["one"])}, "'encoder'"),
        ({"vectors": torch.zeros(1, 4)}, {"encoder": "e"}, "'texts'"),
        ({"vectors": torch.zeros(1, 4)}, {"encoder": "e", "texts": "[not json"}, "Expecting value"),
        (
            {"other": torch.zeros(1, 4)},
            {"encoder": "e", "texts": json.dumps(["one"])},
            "does not contain tensor vectors",
        ),
    ],
)
def test_damaged_text_vectors_are_named(tmp_path, tensors, metadata, reason):
    folder = damaged_text_vectors(tmp_path, tensors, metadata)
    with pytest.raises(
        CheckpointError, match=rf"cannot read text embeddings .*text_embeddings.safetensors: .*{reason}"
    ):
        load_checkpoint(folder)


def test_text_vectors_without_a_fingerprint_still_load(tmp_path):
    folder = damaged_text_vectors(tmp_path, {"vectors": torch.ones(1, 4)}, {"encoder": "e", "texts": '["one"]'})
    loaded = load_checkpoint(folder).text_vectors
    assert (loaded.encoder, loaded.fingerprint, list(loaded.vectors)) == ("e", "", ["one"])
    np.testing.assert_array_equal(loaded.vectors["one"], np.ones(4, np.float32))


def test_text_vectors_file_that_is_not_safetensors(tmp_path):
    folder = damaged_text_vectors(tmp_path, raw=b"\x80\x04 a pickle, not tensors")
    path = re.escape(str(folder / "text_embeddings.safetensors"))
    # safetensors cannot make a header of the pickle's first bytes: that is the reason the message gives
    with pytest.raises(
        CheckpointError, match=rf"^cannot read text embeddings {path}: Error while deserializing header"
    ):
        load_checkpoint(folder)


def test_samples_keep_their_split_dtype_and_a_single_class(tmp_path):
    ckpt = make_checkpoint()
    ckpt.samples = ReferenceSamples(
        ckpt.samples.audio, ckpt.samples.visual, np.array([2, 2, 2, 2]), list("wxyz"), "val"
    )
    save_checkpoint(ckpt, tmp_path / "ck")
    samples = load_checkpoint(tmp_path / "ck").samples
    assert samples.split == "val" and samples.labels.dtype == np.int64 and samples.labels.tolist() == [2, 2, 2, 2]
    assert samples.urls == list("wxyz") and len(samples) == 4


def test_samples_without_a_split_are_the_test_split(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    forget_digests(tmp_path / "ck")
    path = tmp_path / "ck" / "samples.safetensors"
    save_file(load_file(str(path)), str(path), metadata={"format": "kda-samples/1", "urls": json.dumps(list("abcd"))})
    assert load_checkpoint(tmp_path / "ck").samples.split == "stage_2_test"


@pytest.mark.parametrize(
    ("edit", "shapes"),
    [
        # audio right, visual of other dims
        (
            lambda s: setattr(s, "visual", s.visual[:, :100]),
            "audio (4, 512), visual (4, 100), 4 urls and 4 labels from 0 to 2",
        ),
        (
            lambda s: setattr(s, "audio", s.audio[:, :100]),
            "audio (4, 100), visual (4, 512), 4 urls and 4 labels from 0 to 2",
        ),
        (lambda s: setattr(s, "urls", s.urls[:3]), "audio (4, 512), visual (4, 512), 3 urls and 4 labels from 0 to 2"),
        # every shape right: only the label -1 (no class) is out of range
        (
            lambda s: setattr(s, "labels", np.array([0, 1, 2, -1])),
            "audio (4, 512), visual (4, 512), 4 urls and 4 labels from -1 to 2",
        ),
        (
            lambda s: setattr(s, "labels", np.array([0, 1, 2, 3])),
            "audio (4, 512), visual (4, 512), 4 urls and 4 labels from 0 to 3",
        ),
    ],
)
def test_samples_that_do_not_fit_the_checkpoint(tmp_path, edit, shapes):
    ckpt = make_checkpoint()
    edit(ckpt.samples)
    save_checkpoint(ckpt, tmp_path / "ck")
    path = tmp_path / "ck" / "samples.safetensors"
    expected = f"{path} does not match the checkpoint: {shapes}, for 3 classes and dims 512/512"
    with pytest.raises(CheckpointError, match=rf"^{re.escape(expected)}$"):
        load_checkpoint(tmp_path / "ck")


def test_samples_file_that_cannot_be_read(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    forget_digests(tmp_path / "ck")
    (tmp_path / "ck" / "samples.safetensors").write_bytes(b"garbage")
    path = re.escape(str(tmp_path / "ck" / "samples.safetensors"))
    with pytest.raises(
        CheckpointError, match=rf"^cannot read reference samples {path}: Error while deserializing header"
    ):
        load_checkpoint(tmp_path / "ck")


def test_older_texts_beyond_the_three_questions_become_other(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    texts = {"a": ["A", "i", "v", "s", "extra one", "extra two"], "b": ["B", "only intro"], "c": ["C"]}
    config["knowledge"] = {"texts": texts}
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    knowledge = load_checkpoint(tmp_path / "ck").knowledge
    a = knowledge.get("a")
    assert [(d.aspect, d.text) for d in a.descriptions] == [
        ("introduction", "i"),
        ("visual", "v"),
        ("auditory", "s"),
        ("other", "extra one"),
        ("other", "extra two"),
    ]
    assert a.name == "A" and [d.aspect for d in knowledge.get("b").descriptions] == ["introduction"]
    assert knowledge.class_ids == ["a", "b", "c"] and knowledge.get("c").descriptions == ()
    assert (knowledge.class_set, knowledge.provenance) == (
        "checkpoint",
        {"method": "texts stored by an older checkpoint"},
    )


def test_knowledge_section_rows_follow_the_classes(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    classes = config["knowledge"]["classes"]
    config["knowledge"]["classes"] = {k: classes[k] for k in ("c", "a", "b")}  # stored in another order
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    assert load_checkpoint(tmp_path / "ck").knowledge.class_ids == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ({"texts": {"a": [], "b": ["B"], "c": ["C"]}}, "list index out of range"),  # a class without even its name
        ({"texts": ["A", "B", "C"]}, "'list' object has no attribute 'items'"),  # texts not keyed by class
        (  # the knowledge format without a class set: that is what is named first
            {"format": "kda-knowledge/1", "classes": {"a": 3}},
            "{where}: 'class_set' must be a non-empty string such as 'UCF-GZSL'",
        ),
        (  # with a class set, the class that is not an object
            {"format": "kda-knowledge/1", "class_set": "abc", "classes": {"a": 3}},
            "{where}: class 'a': must be an object with 'name' and 'descriptions'",
        ),
        (  # neither the knowledge format nor an older checkpoint's texts
            {"classes": {}},
            "{where}: 'format' is None, expected 'kda-knowledge/1'",
        ),
    ],
)
def test_knowledge_section_that_does_not_parse(tmp_path, section, reason):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["knowledge"] = section
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    path = tmp_path / "ck" / "config.json"
    expected = f"{path}: bad 'knowledge' section: " + reason.format(where=f"{path} 'knowledge'")
    with pytest.raises(CheckpointError, match=rf"^{re.escape(expected)}$"):
        load_checkpoint(tmp_path / "ck")


def test_knowledge_of_missing_classes_is_named(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    del config["knowledge"]["classes"]["b"]
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"other classes than 'classes' \(missing \['b'\], unknown \[\]\)"):
        load_checkpoint(tmp_path / "ck")


def test_checkpoint_without_knowledge_texts(tmp_path):
    ckpt = make_checkpoint()
    ckpt.knowledge = None
    save_checkpoint(ckpt, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.knowledge is None and loaded.texts is None
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["knowledge"] == {}


def test_config_records_what_rebuilds_the_checkpoint(tmp_path):
    ckpt = make_checkpoint()
    ckpt.feature_weights, ckpt.provenance, ckpt.metrics = "offline", {"dataset": "UCF"}, {"best_epoch": 3}
    ckpt.text_encoder = "enc-y"
    ckpt.class_matrix = ckpt.class_matrix.astype(np.float64)  # stored as float32 whatever it came as
    ckpt.samples.audio, ckpt.samples.visual = (
        ckpt.samples.audio.astype(np.float64),
        ckpt.samples.visual.astype(np.float64),
    )
    ckpt.samples.labels = np.array([0, 1, 2, 2], np.int32)
    folder = tmp_path / "new" / "deep" / "ck"  # parents are made
    save_checkpoint(ckpt, folder)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "kda-checkpoint/1"}
    with safe_open(str(folder / "samples.safetensors"), "pt") as f:
        assert f.metadata()["format"] == "kda-samples/1"
    loaded = load_checkpoint(folder)
    assert [(c.id, c.name, c.seen) for c in loaded.classes] == [("a", "A", True), ("b", "B", True), ("c", "C", False)]
    assert loaded.class_matrix.dtype == np.float32 and loaded.samples.audio.dtype == np.float32
    assert loaded.samples.visual.dtype == np.float32 and loaded.samples.labels.dtype == np.int64
    save_checkpoint(ckpt, tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["format"] == "kda-checkpoint/1"
    assert config["features"] == {"setting": "main", "audio_dim": 512, "visual_dim": 512, "weights": "offline"}
    assert config["classes"][2] == {"id": "c", "name": "C", "seen": False}
    assert (config["beta"], config["provenance"], config["metrics"]) == (0.4, {"dataset": "UCF"}, {"best_epoch": 3})
    assert config["text_encoder"] == "enc-y" and loaded.text_encoder == "enc-y"
    ckpt.samples = None  # saving again without a sample removes the stale file
    save_checkpoint(ckpt, folder)
    assert load_checkpoint(folder).samples is None and not (folder / "samples.safetensors").exists()
    loaded = load_checkpoint(tmp_path / "ck")
    assert (loaded.feature_weights, loaded.provenance, loaded.metrics) == (
        "offline",
        {"dataset": "UCF"},
        {"best_epoch": 3},
    )
    with pytest.raises(CheckpointError, match=r"3 classes but 2 class-matrix rows"):
        ckpt.class_matrix = ckpt.class_matrix[:2]
        save_checkpoint(ckpt, tmp_path / "other")


def test_folder_copy_loads_the_same(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    shutil.copytree(tmp_path / "ck", tmp_path / "copy")
    a, b = load_checkpoint(tmp_path / "ck"), load_checkpoint(tmp_path / "copy")
    np.testing.assert_array_equal(a.class_matrix, b.class_matrix)


def test_metrics_table_puts_each_value_under_its_heading():
    result = GZSLResult(12.345, 67.891, 20.5, 33.333, 0.25, "gaps: 3 values")
    lines = result.table("test").splitlines()
    assert lines == [
        "                 S       U      HM     ZSL   beta",
        "test         12.35   67.89   20.50   33.33   0.25",
    ]
    assert str(result) == result.table() and result.table().splitlines()[1].startswith(" " * 13 + "12.35")
    assert json.loads(result.to_json()) == result.to_dict()
    assert result.to_json().startswith('{\n  "seen": 12.345')


def test_a_minimal_config_loads_with_the_documented_defaults(tmp_path):
    save_checkpoint(make_checkpoint(), tmp_path / "ck")
    (tmp_path / "ck" / "samples.safetensors").unlink()
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    minimal = {
        "format": config["format"],
        "model": config["model"],
        "features": {"setting": "main"},
        "classes": [{"id": c["id"], "seen": c["seen"]} for c in config["classes"]],
    }
    (tmp_path / "ck" / "config.json").write_text(json.dumps(minimal))
    loaded = load_checkpoint(tmp_path / "ck")
    assert [c.name for c in loaded.classes] == ["a", "b", "c"]  # the id stands in for a missing name
    assert (loaded.feature_weights, loaded.beta, loaded.text_encoder) == ("pretrained", 0.0, "precomputed")
    assert (loaded.knowledge, loaded.provenance, loaded.metrics, loaded.samples) == (None, {}, {}, None)
    del minimal["classes"]  # no classes at all: the knowledge rows have none to belong to
    (tmp_path / "ck" / "config.json").write_text(json.dumps(minimal))
    with pytest.raises(CheckpointError, match=r"0 classes and embed_dim 512 in config.json, but a class matrix"):
        load_checkpoint(tmp_path / "ck")


def damaged(saved, tmp_path, edit_config=None, edit_tensors=None):
    folder = tmp_path / "damaged"
    shutil.copytree(saved, folder)
    if edit_config is not None:
        config = json.loads((folder / "config.json").read_text())
        edit_config(config)
        (folder / "config.json").write_text(json.dumps(config))
    if edit_tensors is not None:
        forget_digests(folder)
        tensors = load_file(str(folder / "model.safetensors"))
        edit_tensors(tensors)
        save_file(tensors, str(folder / "model.safetensors"))
    return folder


def test_config_that_is_not_json_or_not_an_object(saved, tmp_path):
    folder = damaged(saved, tmp_path)
    (folder / "config.json").write_text('{"format": "kda-checkpoint/1", ')
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON"):
        load_checkpoint(folder)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"format 'list' is not 'kda-checkpoint/1'"):
        load_checkpoint(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("model"), r"bad 'model' section: 'model'"),
        (lambda c: c["model"].update(bogus=1), r"bad 'model' section: unknown model config keys \['bogus'\]"),
        (lambda c: c.__setitem__("model", [1, 2]), r"bad 'model' section: unknown model config keys \[1, 2\]; known: "),
        (lambda c: c.pop("features"), r"bad 'features', 'classes' or 'beta' \(KeyError: 'features'\)"),
        (lambda c: c["features"].update(setting="selavi"), r"unknown feature setting 'selavi'; choose one of"),
        (lambda c: c["classes"][0].pop("seen"), r"bad 'features', 'classes' or 'beta' \(KeyError: 'seen'\)"),
        (lambda c: c.__setitem__("beta", "high"), r"could not convert string to float: 'high'"),
    ],
)
def test_bad_config_sections_are_named(saved, tmp_path, edit, message):
    folder = damaged(saved, tmp_path, edit_config=edit)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(folder))}/config.json: .*{message}"):
        load_checkpoint(folder)


def test_missing_knowledge_tensor(saved, tmp_path):
    folder = damaged(saved, tmp_path, edit_tensors=lambda t: t.pop("knowledge.embeddings"))
    with pytest.raises(CheckpointError, match=r"model.safetensors has no 'knowledge.embeddings' tensor"):
        load_checkpoint(folder)


def test_unexpected_and_misshaped_tensors_are_named(saved, tmp_path):
    def edit(tensors):
        tensors["extra.weight"] = torch.zeros(2)
        tensors["position"] = torch.zeros(3, 512)

    folder = damaged(saved, tmp_path, edit_tensors=edit)
    with pytest.raises(
        CheckpointError,
        match=rf"^{re.escape(str(folder))}/model.safetensors does not match its config.json: unexpected tensors "
        r"\['extra.weight'\]; shape mismatch position: file \(3, 512\) vs config \(2, 512\)$",
    ):
        load_checkpoint(folder)


def test_weights_overwritten_after_saving_are_refused_by_their_digest(saved, tmp_path):
    """Weights overwritten in the middle keep a readable header and the right shapes: only the digest that
    config.json records tells them from the saved ones (before digests, such a checkpoint loaded and answered
    nonsense)."""
    folder = tmp_path / "ck"
    shutil.copytree(saved, folder)
    listed = json.loads((folder / "config.json").read_text())["files"]
    assert set(listed) == {p.name for p in folder.glob("*.safetensors")} and "model.safetensors" in listed
    load_checkpoint(folder)
    path = folder / "model.safetensors"
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)  # zeros in the middle of the weights; the header untouched
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"model.safetensors is not the file this checkpoint was saved with"):
        load_checkpoint(folder)
    forget_digests(folder)
    assert load_checkpoint(folder).model is not None  # without the digest the damage goes unseen: the point
