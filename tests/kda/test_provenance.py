"""Provenance end to end: videos -> `kda extract` -> `kda train` -> config.json. The checkpoint must say exactly
which features (extractor, backbones, caps, dataset root) and which weights they were made with, whether those
are pretrained, offline (random) or synthetic, and which text encoder made its knowledge; and the app must read
the same from it."""

import json
import shutil

import pytest
from conftest import run_cli
from media_factory import needs_ffmpeg

from kda.benchmark import EXTRACTION_MANIFEST, SYNTHETIC_MANIFEST, feature_source
from kda.checkpoint import load_checkpoint
from kda.knowledge import TINY_TEXT_ENCODER
from kda.knowledge.store import ClassKnowledge, Description, Knowledge, save_knowledge
from kda.studio import Studio


def extracted_features(root, weights):
    """What the checkpoint must record of a root `kda extract` wrote: its backbones and caps, and the weights."""
    manifest = json.loads((root / EXTRACTION_MANIFEST).read_text())
    assert (manifest["audio_backbone"], manifest["visual_backbone"]) == ("vggish", "c3d")
    assert "1 C3D clips" in manifest["caps"] and "1 audio examples" in manifest["caps"]
    return {
        "source": "kda extract",
        "weights": weights,
        **{k: manifest[k] for k in ("audio_backbone", "visual_backbone", "caps")},
    }


@pytest.fixture(scope="module")
def knowledge_file(tmp_path_factory):
    """Descriptions of the tiny dataset's three classes, to be encoded with the tiny text encoder."""
    knowledge = Knowledge("tiny", {}, {"author": "test"})
    for label, text in (("A", "A red square."), ("B", "A green square."), ("C", "A blue square.")):
        knowledge.set_class(label, ClassKnowledge(label, (Description("other", text),)))
    return save_knowledge(knowledge, tmp_path_factory.mktemp("knowledge") / "tiny.json")


def train(root, dataset, out, *extra, batch_size=2):
    code, stdout, stderr = run_cli(
        "train", "--root", root, "--dataset", dataset, "--setting", "cls", "--out", out, "--epochs", 1,
        "--batch-size", batch_size, "--samples-per-class", 1, "--quiet", *extra,
    )  # fmt: skip
    assert code == 0, stderr
    assert stdout.strip().splitlines()[-1] == f"checkpoint written to {out}"
    return json.loads((out / "config.json").read_text())


@pytest.mark.media
@needs_ffmpeg
def test_offline_extraction_is_recorded_in_the_checkpoint(tiny_root, knowledge_file, tmp_path):
    out = tmp_path / "ck"
    config = train(tiny_root, "tiny", out, "--knowledge", knowledge_file, "--text-encoder", TINY_TEXT_ENCODER)
    assert config["features"] == {"setting": "cls", "audio_dim": 128, "visual_dim": 4096, "weights": "offline"}
    provenance = config["provenance"]
    assert provenance["features"] == extracted_features(tiny_root, "offline")
    assert (provenance["dataset"], provenance["root"], provenance["setting"]) == ("tiny", str(tiny_root), "cls")
    assert provenance["knowledge"] == str(knowledge_file)
    assert config["text_encoder"] == TINY_TEXT_ENCODER
    assert sorted(config["knowledge"]["classes"]) == ["A", "B", "C"]
    assert [(c["id"], c["seen"]) for c in config["classes"]] == [("A", True), ("B", True), ("C", False)]
    ckpt = load_checkpoint(out)
    assert ckpt.feature_weights == "offline" and ckpt.text_vectors.encoder == TINY_TEXT_ENCODER
    assert Studio(ckpt).offline  # the app runs the offline extractor, and says so


@pytest.mark.media
@needs_ffmpeg
def test_pretrained_extraction_is_recorded_as_pretrained(tiny_root, knowledge_file, tmp_path):
    root = tmp_path / "pretrained"
    shutil.copytree(tiny_root, root)
    manifest = json.loads((root / EXTRACTION_MANIFEST).read_text())
    manifest["offline"] = False  # what `kda extract --weights pretrained` writes (its weights cannot be had here)
    (root / EXTRACTION_MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "ck"
    config = train(root, "tiny", out, "--knowledge", knowledge_file, "--text-encoder", TINY_TEXT_ENCODER)
    assert config["features"]["weights"] == "pretrained"
    assert config["provenance"]["features"] == extracted_features(root, "pretrained")
    assert not Studio(load_checkpoint(out)).offline


def test_synthetic_root_is_recorded_as_synthetic(ucf_synth, tmp_path):
    out = tmp_path / "ck"
    config = train(ucf_synth, "UCF", out, batch_size=256)
    assert config["features"]["weights"] == "none"
    features = config["provenance"]["features"]
    synthetic = json.loads((ucf_synth / SYNTHETIC_MANIFEST).read_text())
    assert features == {"source": "synthetic", "weights": "none", **synthetic}
    assert config["text_encoder"] == "synthetic" and config["provenance"]["knowledge"].endswith("knowledge_vectors.npz")
    studio = Studio(load_checkpoint(out))
    assert studio.offline and "synthetic" in studio.banner


def test_public_features_without_a_manifest_are_recorded_as_pretrained(ucf_synth, tmp_path):
    root = tmp_path / "public"
    shutil.copytree(ucf_synth / "class-split", root / "class-split")  # what the public AVCA download looks like
    assert feature_source(root) == {"source": "benchmark features", "weights": "pretrained"}
    (root / SYNTHETIC_MANIFEST).write_text((ucf_synth / SYNTHETIC_MANIFEST).read_text())
    assert feature_source(root)["weights"] == "none"
