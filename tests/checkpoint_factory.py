"""Small checkpoints made in memory, for the checkpoint tests and the Hub tests."""

import numpy as np
import torch

from kda.checkpoint import (
    Checkpoint,
    ClassEntry,
    ReferenceSamples,
)
from kda.knowledge.class_matrix import TextVectors
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


TEXTS = ["A", "A looks like a", "B", "B looks like b", "C", "C looks like c"]


def with_text_vectors():
    ckpt = make_checkpoint()
    vectors = np.random.default_rng(1).normal(size=(len(TEXTS), 512))  # float64: stored as float32
    ckpt.text_vectors = TextVectors("enc-x", "f1nger", dict(zip(TEXTS, vectors, strict=True)))
    return ckpt


def forget_digests(folder) -> None:
    """Make a saved checkpoint one from before weight digests were recorded (config.json lists no files), so a
    test can damage a file and see what reading it says, not the digest check that would stop it first."""
    import json
    from pathlib import Path

    path = Path(folder) / "config.json"
    config = json.loads(path.read_text())
    del config["files"]
    path.write_text(json.dumps(config))
