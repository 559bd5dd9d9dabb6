"""The optional parts of a checkpoint folder, read back field by field: the per-text knowledge vectors
(text_embeddings.safetensors), the reference sample (samples.safetensors) and the knowledge stored by older
checkpoints; each damaged part is a CheckpointError naming the file. Also the printed metrics table."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_server import LoopbackHub, hub_env
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_checkpoint import make_checkpoint

from kda.checkpoint import (
    FILES,
    CheckpointError,
    ReferenceSamples,
    TestSplit,
    load_checkpoint,
    resolve,
    save_checkpoint,
)
from kda.knowledge.class_matrix import TextVectors
from kda.metrics import GZSLResult

TEXTS = ["A", "A looks like a", "B", "B looks like b", "C", "C looks like c"]


def with_text_vectors():
    ckpt = make_checkpoint()
    vectors = np.random.default_rng(1).normal(size=(len(TEXTS), 512))  # float64: stored as float32
    ckpt.text_vectors = TextVectors("enc-x", "f1nger", dict(zip(TEXTS, vectors, strict=True)))
    return ckpt


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


# -- the reference sample --------------------------------------------------------------------------------------


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
    (tmp_path / "ck" / "samples.safetensors").write_bytes(b"garbage")
    path = re.escape(str(tmp_path / "ck" / "samples.safetensors"))
    with pytest.raises(
        CheckpointError, match=rf"^cannot read reference samples {path}: Error while deserializing header"
    ):
        load_checkpoint(tmp_path / "ck")


# -- knowledge stored by older checkpoints, and a knowledge section that does not parse ---------------------------


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


FETCH_SCRIPT = """
import sys
from kda.checkpoint import load_checkpoint, resolve
load_checkpoint(sys.argv[1])
print(resolve(sys.argv[1]))
"""


def test_a_checkpoint_id_on_the_hub_fetches_its_repository_and_only_the_checkpoint_files(tmp_path):
    """Through the real huggingface_hub client and a loopback Hub: the id names the repository, and only the
    checkpoint's files are fetched (not the repository's README or training log)."""
    folder = tmp_path / "served"
    ckpt = with_text_vectors()
    ckpt.test_split = TestSplit(np.zeros((2, 512), np.float16), np.array([0, 2]), ["t0", "t1"])  # every part
    save_checkpoint(ckpt, folder)
    (folder / "README.md").write_text("---\nlibrary_name: kda\n---\n")
    (folder / "train_log.jsonl").write_text("{}\n")
    hub = LoopbackHub({"someone/tiny-kda": folder, "someone/other": tmp_path})
    with hub as endpoint:
        env = hub_env(endpoint, tmp_path / "hf")
        fetched = subprocess.run(
            [sys.executable, "-c", FETCH_SCRIPT, "hf-hub:someone/tiny-kda"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    assert fetched.returncode == 0, fetched.stderr[-2000:]
    assert sorted(hub.downloads) == [("someone/tiny-kda", name) for name in sorted(FILES)]
    snapshot = Path(fetched.stdout.strip())
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(FILES)
    assert all((snapshot / name).read_bytes() == (folder / name).read_bytes() for name in FILES)
    assert resolve(folder) == folder  # a local folder is itself (and, in process, ties this test to `resolve`)


# -- the metrics table the command line prints ---------------------------------------------------------------------


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
