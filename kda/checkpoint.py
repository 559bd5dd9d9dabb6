"""KDA checkpoints: a folder (or a `hf-hub:` id resolving to one) with `model.safetensors` and
`config.json`. Loading reads tensors and JSON only, never pickled code.

config.json:
    format            "kda-checkpoint/1"
    model             ModelConfig fields (rebuilds the network)
    features          {"setting": "cls", "audio_dim": 128, "visual_dim": 4096, "weights": "pretrained"}: the
                      feature setting names the extractor that makes matching features from a video, and
                      `weights` its weights ('pretrained', 'offline' = seeded random, 'none' = synthetic)
    text_encoder      id of the encoder that made the knowledge embeddings ("precomputed"/"synthetic" when
                      they came from a file)
    classes           [{"id", "name", "seen"}] in knowledge-row order
    knowledge         {"texts": {class id: [texts]}} (absent when only vectors were given)
    beta              calibrated-stacking offset chosen on validation
    provenance        dataset, root, protocol, loss and training settings, date, kda version
    metrics           {"validation": GZSLResult, "test": GZSLResult, "best_epoch": int}
model.safetensors: the network's state dict plus `knowledge.embeddings` (C, E).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kda.errors import KdaError
from kda.model import KDAModel, ModelConfig

FORMAT = "kda-checkpoint/1"
KNOWLEDGE_KEY = "knowledge.embeddings"
HUB_PREFIX = "hf-hub:"


class CheckpointError(KdaError):
    """A checkpoint that is missing, malformed or does not match what it is used with."""


@dataclass
class ClassEntry:
    id: str
    name: str
    seen: bool


@dataclass
class Checkpoint:
    model: KDAModel
    setting: str  # feature setting (extractor registry name)
    text_encoder: str
    classes: list[ClassEntry]
    knowledge: np.ndarray  # (C, E), rows follow `classes`
    beta: float = 0.0
    feature_weights: str = "pretrained"  # extractor weights that match the training features
    texts: dict[str, list[str]] | None = None
    provenance: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def class_ids(self) -> list[str]:
        return [c.id for c in self.classes]

    @property
    def seen_mask(self) -> np.ndarray:
        return np.array([c.seen for c in self.classes], dtype=bool)

    def config(self) -> dict:
        cfg = self.model.cfg
        return {
            "format": FORMAT,
            "model": cfg.to_dict(),
            "features": {
                "setting": self.setting,
                "audio_dim": cfg.audio_dim,
                "visual_dim": cfg.visual_dim,
                "weights": self.feature_weights,
            },
            "text_encoder": self.text_encoder,
            "classes": [{"id": c.id, "name": c.name, "seen": c.seen} for c in self.classes],
            "knowledge": {"texts": self.texts} if self.texts is not None else {},
            "beta": self.beta,
            "provenance": self.provenance,
            "metrics": self.metrics,
        }


def save_checkpoint(ckpt: Checkpoint, folder: str | Path) -> Path:
    folder = Path(folder)
    if len(ckpt.classes) != len(ckpt.knowledge):
        raise CheckpointError(f"{len(ckpt.classes)} classes but {len(ckpt.knowledge)} knowledge rows")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in ckpt.model.state_dict().items()}
    tensors[KNOWLEDGE_KEY] = torch.from_numpy(np.ascontiguousarray(ckpt.knowledge, dtype=np.float32))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": FORMAT})
    (folder / "config.json").write_text(json.dumps(ckpt.config(), indent=1, ensure_ascii=False) + "\n")
    return folder


def resolve(location: str | Path) -> Path:
    """A local folder, or a `hf-hub:owner/name` id downloaded (or read from the cache) by huggingface_hub."""
    text = str(location)
    if text.startswith(HUB_PREFIX):
        from huggingface_hub import snapshot_download

        repo = text[len(HUB_PREFIX) :]
        try:
            return Path(snapshot_download(repo, allow_patterns=["config.json", "model.safetensors"]))
        except Exception as e:
            raise CheckpointError(
                f"cannot fetch checkpoint {repo} from the Hugging Face Hub ({type(e).__name__}: {e}); "
                "check the id and your network, or download it and pass the local folder"
            ) from e
    folder = Path(text)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {folder} is not a folder (expected config.json + model.safetensors)")
    return folder


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder} has no config.json; is it a KDA checkpoint?")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {config.get('format')!r} is not {FORMAT!r}")
    return config


def load_checkpoint(location: str | Path) -> Checkpoint:
    folder = resolve(location)
    config = read_config(folder)
    try:
        tensors = load_file(str(folder / "model.safetensors"))
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {folder / 'model.safetensors'}: {e}") from e
    try:
        model_cfg = ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder}/config.json: bad 'model' section: {e}") from e
    knowledge = tensors.pop(KNOWLEDGE_KEY, None)
    if knowledge is None:
        raise CheckpointError(f"{folder}/model.safetensors has no {KNOWLEDGE_KEY!r} tensor")
    model = KDAModel(model_cfg)
    check_state(model, tensors, folder)
    model.load_state_dict(tensors)
    model.eval()
    classes = [ClassEntry(c["id"], c.get("name", c["id"]), bool(c["seen"])) for c in config.get("classes", [])]
    if len(classes) != knowledge.shape[0] or knowledge.shape[1] != model_cfg.embed_dim:
        raise CheckpointError(
            f"{folder}: {len(classes)} classes and embed_dim {model_cfg.embed_dim} in config.json, but knowledge "
            f"embeddings of shape {tuple(knowledge.shape)}"
        )
    return Checkpoint(
        model=model,
        setting=config["features"]["setting"],
        text_encoder=config.get("text_encoder", "precomputed"),
        classes=classes,
        knowledge=knowledge.numpy(),
        beta=float(config.get("beta", 0.0)),
        feature_weights=config["features"].get("weights", "pretrained"),
        texts=config.get("knowledge", {}).get("texts"),
        provenance=config.get("provenance", {}),
        metrics=config.get("metrics", {}),
    )


def check_state(model: KDAModel, tensors: dict[str, torch.Tensor], folder: Path) -> None:
    """Name every missing, unexpected or mis-shaped tensor rather than failing inside torch."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing[:5]}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected[:5]}")
    shapes = [
        f"{k}: file {found[k]} vs config {expected[k]}" for k in expected if k in found and found[k] != expected[k]
    ]
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:5]))
    if problems:
        raise CheckpointError(f"{folder}/model.safetensors does not match its config.json: " + "; ".join(problems))
