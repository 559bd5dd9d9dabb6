"""KDA checkpoints: a folder (or a `hf-hub:owner/name[@revision]` id resolving to one) with `model.safetensors`,
`config.json` and optionally `samples.safetensors`. Loading reads tensors and JSON only, never pickled code.

config.json:
    format            "kda-checkpoint/1"
    model             ModelConfig fields (rebuilds the network)
    features          {"setting": "cls", "audio_dim": 128, "visual_dim": 4096, "weights": "pretrained"}: the
                      feature setting names the extractor that makes matching features from a video, and
                      `weights` its weights ('pretrained', 'offline' = seeded random, 'none' = synthetic)
    text_encoder      id of the encoder that made the class matrix ("precomputed"/"synthetic" when it came
                      from a file)
    class_matrix_form how texts became rows: "unit" or "raw-mean" (kda.knowledge.class_matrix); inferred from
                      the rows' norms when absent (checkpoints before it was recorded)
    classes           [{"id", "name", "seen"}] in class-matrix row order
    knowledge         the knowledge file of the checkpoint's classes (`kda-knowledge/1`: names, descriptions by
                      aspect, provenance), keyed by class id; {} when only vectors were given. Checkpoints
                      before it stored {"texts": {class id: [name, texts...]}}, still read.
    beta              calibrated-stacking offset chosen on validation
    provenance        dataset, root, protocol, loss and training settings, date, kda version
    files             {file name: SHA-256} of every .safetensors file saved with it, checked on loading
    metrics           {"validation": GZSLResult, "test": GZSLResult, "best_epoch": int}
model.safetensors: the network's state dict plus the class matrix t_c (C, E) as `knowledge.embeddings`.
text_embeddings.safetensors: `vectors` (T, E), the vector of every knowledge text (t_c is the mean of its
    class's), with metadata `texts` (JSON list), `encoder` (id), `fingerprint` (of its weights) and `form`, so
    an edited description is the only text the app has to encode.
samples.safetensors: a reference sample of evaluation videos (a few per class of the test split), which the
    app plots and classifies when nothing is uploaded: `audio` (N, Da), `visual` (N, Dv), `labels` (N,) int64
    indexing `classes`; metadata `format` "kda-samples/1", `urls` (a JSON list, one per video), `split`.
test_split.safetensors: the fused embeddings of every video of the test split the recorded test metrics were
    measured on, so any edited knowledge is scored on the benchmark without the features or a forward pass
    (`kda.knowledge_ab`): `rho_av` (N, E) float16 (float32 where rounding to float16 would change a recorded
    metric), `labels` (N,) int64 indexing `classes` (whose `seen` flags make the GZSL split); metadata `format`
    "kda-test-split/1", `urls` (a JSON list), `split`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from kda.errors import KdaError
from kda.files import HUB_PREFIX, sha256_of, split_hub_id
from kda.knowledge.class_matrix import FORMS, TextVectors, check_form, infer_form
from kda.knowledge.store import ASPECTS, ClassKnowledge, Description, Knowledge, KnowledgeError, parse_knowledge
from kda.model import KDAModel, ModelConfig
from kda.settings import get_setting

FORMAT = "kda-checkpoint/1"
SAMPLES_FORMAT = "kda-samples/1"
TEST_SPLIT_FORMAT = "kda-test-split/1"
CLASS_MATRIX_KEY = "knowledge.embeddings"  # the tensor name in model.safetensors (a file format: kept)
FILES = (
    "config.json",
    "model.safetensors",
    "samples.safetensors",
    "text_embeddings.safetensors",
    "test_split.safetensors",
)


class CheckpointError(KdaError):
    """A checkpoint that is missing, malformed or does not match what it is used with."""


@dataclass
class ClassEntry:
    id: str
    name: str
    seen: bool


@dataclass
class ReferenceSamples:
    """A few evaluation videos per class, as features."""

    audio: np.ndarray  # (N, Da) float32
    visual: np.ndarray  # (N, Dv) float32
    labels: np.ndarray  # (N,) int64, index into the checkpoint's classes
    urls: list[str]
    split: str = "stage_2_test"

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class TestSplit:
    """rho_av of every test video and its true class: knowledge does not change rho_av, so these score any
    class matrix on the benchmark with a distance computation."""

    __test__ = False  # a library class whose name starts with "Test", not a pytest test class

    rho_av: np.ndarray  # (N, E) float16 or float32, as stored
    labels: np.ndarray  # (N,) int64, index into the checkpoint's classes
    urls: list[str]
    split: str = "stage_2_test"

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Checkpoint:
    model: KDAModel
    setting: str  # feature setting (extractor registry name)
    text_encoder: str
    classes: list[ClassEntry]
    class_matrix: np.ndarray  # (C, E) t_c, rows follow `classes`
    beta: float = 0.0
    feature_weights: str = "pretrained"  # extractor weights that match the training features
    knowledge: Knowledge | None = None  # the texts behind `class_matrix`, keyed by class id
    class_matrix_form: str = "unit"  # kda.knowledge.class_matrix.FORMS
    provenance: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    samples: ReferenceSamples | None = None
    text_vectors: TextVectors | None = None  # each knowledge text's vector, so an edit encodes only what changed
    test_split: TestSplit | None = None  # the test videos' rho_av, for knowledge A/B on the benchmark

    @property
    def texts(self) -> dict[str, list[str]] | None:
        """class id -> [readable name, descriptions...]: the texts each class-matrix row was built from."""
        if self.knowledge is None:
            return None
        return {c: self.knowledge.texts(c) for c in self.knowledge.class_ids}

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
            "class_matrix_form": self.class_matrix_form,
            "classes": [{"id": c.id, "name": c.name, "seen": c.seen} for c in self.classes],
            "knowledge": self.knowledge.to_json() if self.knowledge is not None else {},
            "beta": self.beta,
            "provenance": self.provenance,
            "metrics": self.metrics,
        }


def save_checkpoint(ckpt: Checkpoint, folder: str | Path) -> Path:
    folder = Path(folder)
    if len(ckpt.classes) != len(ckpt.class_matrix):
        raise CheckpointError(f"{len(ckpt.classes)} classes but {len(ckpt.class_matrix)} class-matrix rows")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in ckpt.model.state_dict().items()}
    tensors[CLASS_MATRIX_KEY] = torch.from_numpy(np.ascontiguousarray(ckpt.class_matrix, dtype=np.float32))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": FORMAT})
    for name in ("samples.safetensors", "text_embeddings.safetensors", "test_split.safetensors"):
        (folder / name).unlink(missing_ok=True)
    if ckpt.samples is not None:
        save_samples(ckpt.samples, folder / "samples.safetensors")
    if ckpt.test_split is not None:
        save_test_split(ckpt.test_split, folder / "test_split.safetensors")
    if ckpt.text_vectors is not None and ckpt.text_vectors.vectors:
        save_text_vectors(ckpt.text_vectors, folder / "text_embeddings.safetensors")
    written = [folder / name for name in FILES if name.endswith(".safetensors") and (folder / name).is_file()]
    config = {**ckpt.config(), "files": {path.name: sha256_of(path) for path in written}}
    (folder / "config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n")
    return folder


def save_text_vectors(text_vectors: TextVectors, path: Path) -> None:
    texts = list(text_vectors.vectors)
    vectors = torch.from_numpy(np.stack([text_vectors.vectors[t] for t in texts]).astype(np.float32))
    metadata = {
        "encoder": text_vectors.encoder,
        "fingerprint": text_vectors.fingerprint,
        "form": text_vectors.form,
        "texts": json.dumps(texts),
    }
    save_file({"vectors": vectors}, str(path), metadata=metadata)


def read_text_vectors(path: Path) -> TextVectors | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            vectors = f.get_tensor("vectors").numpy()
        texts = json.loads(metadata["texts"])
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts for {len(vectors)} vectors")
        form = check_form(metadata.get("form", "unit"))  # files before forms were recorded: "unit"
        return TextVectors(
            metadata["encoder"], metadata.get("fingerprint", ""), dict(zip(texts, vectors, strict=True)), form
        )
    except (SafetensorError, OSError, KeyError, ValueError, KdaError) as e:
        raise CheckpointError(f"cannot read text embeddings {path}: {e}") from e


def save_samples(samples: ReferenceSamples, path: Path) -> None:
    tensors = {
        "audio": torch.from_numpy(np.ascontiguousarray(samples.audio, dtype=np.float32)),
        "visual": torch.from_numpy(np.ascontiguousarray(samples.visual, dtype=np.float32)),
        "labels": torch.from_numpy(np.ascontiguousarray(samples.labels, dtype=np.int64)),
    }
    metadata = {"format": SAMPLES_FORMAT, "urls": json.dumps(list(samples.urls)), "split": samples.split}
    save_file(tensors, str(path), metadata=metadata)


def save_test_split(split: TestSplit, path: Path) -> None:
    if split.rho_av.dtype not in (np.float16, np.float32):
        raise CheckpointError(f"a test split's rho_av must be float16 or float32, not {split.rho_av.dtype}")
    tensors = {
        "rho_av": torch.from_numpy(np.ascontiguousarray(split.rho_av)),
        "labels": torch.from_numpy(np.ascontiguousarray(split.labels, dtype=np.int64)),
    }
    metadata = {"format": TEST_SPLIT_FORMAT, "urls": json.dumps(list(split.urls)), "split": split.split}
    save_file(tensors, str(path), metadata=metadata)


def resolve(location: str | Path) -> Path:
    """A local folder, or a `hf-hub:owner/name[@revision]` id downloaded (or read from the cache) by
    huggingface_hub at that revision (a commit id pins it; none means the head of main)."""
    text = str(location)
    if text.startswith(HUB_PREFIX):
        from huggingface_hub import snapshot_download

        repo, revision = split_hub_id(text)
        try:
            return Path(snapshot_download(repo, revision=revision, allow_patterns=list(FILES)))
        except Exception as e:  # the Hub's errors span lines: one line is what the CLI and the app show
            at = f" at revision {revision}" if revision else ""
            raise CheckpointError(
                f"cannot fetch checkpoint {repo}{at} from the Hugging Face Hub ({type(e).__name__}: "
                f"{' '.join(str(e).split())}); check the id and your network, or download it and pass the local folder"
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
    found = config.get("format") if isinstance(config, dict) else type(config).__name__
    if found != FORMAT:
        raise CheckpointError(f"{path}: format {found!r} is not {FORMAT!r}")
    return config


def check_files(folder: Path, config: dict) -> None:
    """Every tensor file config.json lists, where present, is the very file saved with it: a file overwritten
    after saving, even one whose header still reads, would otherwise load and answer nonsense. (A missing
    optional file is allowed, as before; a missing model.safetensors fails where it is read.) Checkpoints saved
    before digests were recorded list none."""
    files = config.get("files", {})
    if not isinstance(files, dict):
        raise CheckpointError(f"{folder}/config.json: 'files' must map file names to SHA-256 digests")
    for name, digest in files.items():
        path = folder / Path(str(name)).name  # a name, never a path out of the folder
        if not path.is_file():
            continue
        actual = sha256_of(path)
        if actual != digest:
            raise CheckpointError(
                f"{path} is not the file this checkpoint was saved with (SHA-256 {actual[:16]}..., config.json "
                f"records {str(digest)[:16]}...): it was changed or damaged after saving; restore it or save the "
                "checkpoint again"
            )


def load_checkpoint(location: str | Path) -> Checkpoint:
    folder = resolve(location)
    config = read_config(folder)
    check_files(folder, config)
    try:
        tensors = load_file(str(folder / "model.safetensors"))
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {folder / 'model.safetensors'}: {e}") from e
    try:
        model_cfg = ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError, KdaError) as e:
        raise CheckpointError(f"{folder}/config.json: bad 'model' section: {e}") from e
    setting, weights, classes, beta = read_sections(config, folder)
    class_matrix = tensors.pop(CLASS_MATRIX_KEY, None)
    if class_matrix is None:
        raise CheckpointError(f"{folder}/model.safetensors has no {CLASS_MATRIX_KEY!r} tensor (the class matrix)")
    model = KDAModel(model_cfg)
    check_state(model, tensors, folder)
    model.load_state_dict(tensors)
    model.eval()
    if len(classes) != class_matrix.shape[0] or class_matrix.shape[1] != model_cfg.embed_dim:
        raise CheckpointError(
            f"{folder}: {len(classes)} classes and embed_dim {model_cfg.embed_dim} in config.json, but a class "
            f"matrix of shape {tuple(class_matrix.shape)}"
        )
    form = config.get("class_matrix_form") or infer_form(class_matrix.numpy())
    if form not in FORMS:
        raise CheckpointError(f"{folder}/config.json: class_matrix_form {form!r} is not one of {', '.join(FORMS)}")
    return Checkpoint(
        model=model,
        setting=setting,
        text_encoder=config.get("text_encoder", "precomputed"),
        classes=classes,
        class_matrix=class_matrix.numpy(),
        beta=beta,
        feature_weights=weights,
        knowledge=read_knowledge(config.get("knowledge") or {}, classes, folder),
        class_matrix_form=form,
        provenance=config.get("provenance", {}),
        metrics=config.get("metrics", {}),
        samples=read_samples(folder / "samples.safetensors", model_cfg, len(classes)),
        text_vectors=read_text_vectors(folder / "text_embeddings.safetensors"),
        test_split=read_test_split(folder / "test_split.safetensors", model_cfg.embed_dim, len(classes)),
    )


def read_sections(config: dict, folder: Path) -> tuple[str, str, list[ClassEntry], float]:
    """(feature setting, extractor weights, classes, beta) from config.json; a missing or malformed field is a
    CheckpointError naming it, never a KeyError from deep inside."""
    try:
        features = config["features"]
        setting = get_setting(features["setting"]).name
        weights = features.get("weights", "pretrained")
        classes = [ClassEntry(c["id"], c.get("name", c["id"]), bool(c["seen"])) for c in config.get("classes", [])]
        beta = float(config.get("beta", 0.0))
    except (KeyError, TypeError, ValueError, AttributeError, KdaError) as e:
        raise CheckpointError(
            f"{folder}/config.json: bad 'features', 'classes' or 'beta' ({type(e).__name__}: {e})"
        ) from e
    return setting, weights, classes, beta


def read_knowledge(section: dict, classes: list[ClassEntry], folder: Path) -> Knowledge | None:
    """The knowledge file stored in config.json (or rebuilt from the texts older checkpoints stored), checked
    to describe exactly the checkpoint's classes."""
    if not section:
        return None
    try:
        if "texts" in section and "format" not in section:  # before the full knowledge file was stored
            entries = {c: legacy_class(texts) for c, texts in section["texts"].items()}
            knowledge = Knowledge("checkpoint", entries, {"method": "texts stored by an older checkpoint"})
        else:
            knowledge = parse_knowledge(section, f"{folder}/config.json 'knowledge'")
    except (KnowledgeError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{folder}/config.json: bad 'knowledge' section: {e}") from e
    ids = [c.id for c in classes]
    if sorted(knowledge.class_ids) != sorted(ids):
        missing = sorted(set(ids) - set(knowledge.class_ids))
        extra = sorted(set(knowledge.class_ids) - set(ids))
        raise CheckpointError(
            f"{folder}/config.json: the knowledge describes other classes than 'classes' "
            f"(missing {missing[:5]}, unknown {extra[:5]})"
        )
    knowledge.classes = {c: knowledge.classes[c] for c in ids}  # row order
    return knowledge


def legacy_class(texts: list[str]) -> ClassKnowledge:
    """[name, d1, d2, d3] as stored by older checkpoints; the paper's aspects in order, 'other' beyond."""
    descriptions = (Description(ASPECTS[i] if i < len(ASPECTS) else "other", t) for i, t in enumerate(texts[1:]))
    return ClassKnowledge(texts[0], tuple(descriptions))


def read_tensor_file(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and every tensor of a safetensors file (raises SafetensorError or OSError)."""
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)


def read_samples(path: Path, cfg: ModelConfig, num_classes: int) -> ReferenceSamples | None:
    if not path.is_file():
        return None
    try:
        metadata, tensors = read_tensor_file(path)
        samples = ReferenceSamples(
            tensors["audio"].numpy(),
            tensors["visual"].numpy(),
            tensors["labels"].numpy().astype(np.int64),
            json.loads(metadata["urls"]),
            metadata.get("split", "stage_2_test"),
        )
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"cannot read reference samples {path}: {e}") from e
    n = len(samples.labels)
    shapes_ok = samples.audio.shape == (n, cfg.audio_dim) and samples.visual.shape == (n, cfg.visual_dim)
    low, high = (int(samples.labels.min()), int(samples.labels.max())) if n else (0, -1)
    if not shapes_ok or len(samples.urls) != n or (n and not 0 <= low <= high < num_classes):
        raise CheckpointError(
            f"{path} does not match the checkpoint: audio {samples.audio.shape}, visual {samples.visual.shape}, "
            f"{len(samples.urls)} urls and {n} labels from {low} to {high}, "
            f"for {num_classes} classes and dims {cfg.audio_dim}/{cfg.visual_dim}"
        )
    return samples


def read_test_split(path: Path, embed_dim: int, num_classes: int) -> TestSplit | None:
    if not path.is_file():
        return None
    try:
        metadata, tensors = read_tensor_file(path)
        if metadata.get("format") != TEST_SPLIT_FORMAT:
            raise ValueError(f"format {metadata.get('format')!r} is not {TEST_SPLIT_FORMAT!r}")
        split = TestSplit(
            tensors["rho_av"].numpy(),
            tensors["labels"].numpy().astype(np.int64),
            json.loads(metadata["urls"]),
            metadata.get("split", "stage_2_test"),
        )
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"cannot read the test split {path}: {e}") from e
    n = len(split.labels)
    low, high = (int(split.labels.min()), int(split.labels.max())) if n else (0, -1)
    shape_ok = split.rho_av.shape == (n, embed_dim) and split.rho_av.dtype in (np.float16, np.float32)
    if not shape_ok or split.labels.ndim != 1 or len(split.urls) != n or (n and not 0 <= low <= high < num_classes):
        raise CheckpointError(
            f"{path} does not match the checkpoint: rho_av {split.rho_av.dtype} {split.rho_av.shape}, "
            f"{len(split.urls)} urls and {n} labels from {low} to {high}, for {num_classes} classes and "
            f"embed_dim {embed_dim} (rho_av must be float16 or float32)"
        )
    return split


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
