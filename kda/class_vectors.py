"""Class knowledge embeddings t_c as training and evaluation use them: read from a precomputed file or
encoded from a knowledge (descriptions) file, and bound to a class list by name, never by row order.

Precomputed files:
  * `.npz` with `names` (C,) str, `embeddings` (C, E) float, optional `encoder` (str);
  * `.json` `{"encoder": str, "embeddings": {class name: [floats]}}`, or plainly `{class name: [floats]}`.
A knowledge file (`"format": "kda-knowledge/1"`) is encoded with the given text encoder into t_c by
`kda.knowledge.embed.class_vector` (the L2-normalised mean of the class's encoded texts, name included).
Precomputed vectors are L2-normalised on load the same way (`unit_rows`), so every t_c is unit length.
With `raw=True` (the `released` preset) nothing is normalised: precomputed vectors are taken as they are, and a
knowledge file gives the plain mean of its texts' raw text embeddings (`raw_text_vectors`), as the released code
made its targets.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kda.errors import KdaError
from kda.knowledge.embed import unit_rows
from kda.knowledge.store import Knowledge
from kda.names import match_classes

PRECOMPUTED = "precomputed"  # encoder id of vectors that came from a file, not from texts


class KnowledgeMismatchError(KdaError):
    """Knowledge and class list do not match by name."""


@dataclass
class TextVectors:
    """The vector of every text a knowledge file was encoded from, and the encoder (id and weight fingerprint)
    that made them: with them, editing one description re-encodes that description alone."""

    encoder: str
    fingerprint: str
    vectors: dict[str, np.ndarray]  # text -> (E,)

    def only(self, texts: set[str]) -> TextVectors:
        return TextVectors(self.encoder, self.fingerprint, {t: v for t, v in self.vectors.items() if t in texts})


@dataclass
class ClassVectors:
    names: list[str]
    vectors: np.ndarray  # (C, E) float32
    encoder: str  # text encoder id, or PRECOMPUTED
    knowledge: Knowledge | None = None  # the knowledge file the vectors were encoded from, keyed like `names`
    text_vectors: TextVectors | None = None  # each encoded text's own vector (what edits start from)

    @property
    def texts(self) -> dict[str, list[str]] | None:
        """class -> the texts that were encoded (readable name first)."""
        return None if self.knowledge is None else {c: self.knowledge.texts(c) for c in self.names}

    def bind(self, classes: list[str], known: list[str] | None = None) -> ClassVectors:
        """The vectors of `classes`, in that order (names matched case-insensitively). Classes missing from
        the knowledge, or knowledge of classes outside `known` (default: `classes`), are errors naming them."""
        rows = match_classes(classes, self.names)
        known_rows = set(match_classes(known if known is not None else classes, self.names))
        missing = [c for c, row in zip(classes, rows, strict=True) if row is None]
        unknown = [n for i, n in enumerate(self.names) if i not in known_rows]
        problems = []
        if missing:
            problems.append(f"no knowledge for {len(missing)} classes: {', '.join(missing[:8])}")
        if unknown:
            problems.append(f"knowledge for {len(unknown)} unknown classes: {', '.join(unknown[:8])}")
        if problems:
            raise KnowledgeMismatchError("; ".join(problems))
        knowledge = None
        if self.knowledge is not None:  # the same texts, keyed by the bound spelling of each class
            k = self.knowledge
            entries = {c: k.classes[self.names[i]] for c, i in zip(classes, rows, strict=True)}
            knowledge = Knowledge(k.class_set, entries, dict(k.provenance), source=k.source)
        text_vectors = None
        if self.text_vectors is not None and knowledge is not None:
            text_vectors = self.text_vectors.only({t for c in knowledge.class_ids for t in knowledge.texts(c)})
        return ClassVectors(list(classes), self.vectors[rows], self.encoder, knowledge, text_vectors)


def save_vectors(path: str | Path, names: list[str], vectors: np.ndarray, encoder: str = PRECOMPUTED) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        data = {
            "encoder": encoder,
            "embeddings": {n: [float(x) for x in v] for n, v in zip(names, vectors, strict=True)},
        }
        path.write_text(json.dumps(data))
    else:
        np.savez(path, names=np.array(names), embeddings=np.asarray(vectors, np.float32), encoder=np.array(encoder))
    return path


def load_vectors(path: str | Path, text_encoder: str | None = None, raw: bool = False) -> ClassVectors:
    """Read a precomputed embeddings file, or encode a knowledge file with `text_encoder` (its id). Unit rows,
    unless `raw`: then the vectors as stored, or the raw mean of the text embeddings."""
    vectors = read_vectors(Path(path), text_encoder, raw)
    if not raw:
        vectors.vectors = unit_rows(vectors.vectors)
    return vectors


def read_vectors(path: Path, text_encoder: str | None, raw: bool = False) -> ClassVectors:
    if not path.is_file():
        raise FileNotFoundError(f"knowledge file {path} does not exist")
    if path.suffix == ".npz":
        return read_npz(path)
    if path.suffix != ".json":
        raise KdaError(f"{path}: knowledge must be a .json knowledge/embeddings file or an .npz embeddings file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise KdaError(f"{path} is not valid JSON: {e}") from e
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):  # {class: [floats]}
        return plain_mapping(path, data)
    if isinstance(data, dict) and "embeddings" in data:
        names = list(data["embeddings"])
        vectors = np.asarray([data["embeddings"][n] for n in names], dtype=np.float32)
        return ClassVectors(names, vectors, data.get("encoder", PRECOMPUTED))
    if isinstance(data, dict) and str(data.get("format", "")).startswith("kda-knowledge/"):
        return encode_raw_mean(path, text_encoder) if raw else encode_knowledge_file(path, text_encoder)
    raise KdaError(f"{path}: neither a knowledge file ('format': 'kda-knowledge/1') nor an embeddings file")


def plain_mapping(path: Path, data: dict) -> ClassVectors:
    try:
        vectors = np.asarray(list(data.values()), dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise KdaError(f"{path}: every class must map to a list of numbers of the same length ({e})") from e
    if vectors.ndim != 2:
        raise KdaError(f"{path}: every class must map to a list of numbers of the same length")
    return ClassVectors(list(data), vectors, PRECOMPUTED)


def read_npz(path: Path) -> ClassVectors:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"names", "embeddings"} - set(f.files)
            if missing:
                raise KdaError(f"{path} lacks arrays {sorted(missing)}; expected 'names' and 'embeddings'")
            encoder = str(f["encoder"]) if "encoder" in f.files else PRECOMPUTED
            return ClassVectors([str(n) for n in f["names"]], f["embeddings"].astype(np.float32), encoder)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # damaged, or arrays that need unpickling
        raise KdaError(f"{path} is not a readable .npz embeddings file ({e})") from e


def encode_knowledge_file(path: Path, text_encoder: str | None) -> ClassVectors:
    from kda.knowledge import (
        DEFAULT_TEXT_ENCODER,
        EmbeddingCache,
        class_embeddings,
        embedding_matrix,
        load_knowledge,
        load_text_encoder,
    )

    knowledge = load_knowledge(path)
    encoder = load_text_encoder(text_encoder or DEFAULT_TEXT_ENCODER)
    cache = EmbeddingCache()
    embeddings = class_embeddings(knowledge, encoder, cache)
    names = list(knowledge.class_ids)
    text_vectors = TextVectors(encoder.id, encoder.fingerprint(), {t: v for (_, t), v in cache.vectors.items()})
    return ClassVectors(names, embedding_matrix(embeddings, names), encoder.id, knowledge, text_vectors)


def raw_text_vectors(encoder, texts: list[str]) -> np.ndarray:
    """(N, E) text embeddings before the encoder's L2 normalisation: for a CLIP text tower the projected
    end-of-text features (what the released code averaged); other encoders only give unit vectors."""
    from kda.knowledge.encoders import BATCH_SIZE, ClipTextEncoder, encode_tokens

    if not isinstance(encoder, ClipTextEncoder):
        return encoder.encode(texts)
    import torch

    with torch.inference_mode():
        tokens = encoder.tokenizer(texts)  # (N, context_length)
        chunks = [encode_tokens(encoder.model, tokens[i : i + BATCH_SIZE]) for i in range(0, len(texts), BATCH_SIZE)]
        return torch.cat(chunks).float().numpy()


def encode_raw_mean(path: Path, text_encoder: str | None) -> ClassVectors:
    """t_c = the plain mean of the raw text embeddings of the class's name and descriptions (no normalisation).
    No per-text vectors are kept: the app's incremental edits make unit t_c, which these are not."""
    from kda.knowledge import DEFAULT_TEXT_ENCODER, load_knowledge, load_text_encoder

    knowledge = load_knowledge(path)
    encoder = load_text_encoder(text_encoder or DEFAULT_TEXT_ENCODER)
    names = list(knowledge.class_ids)
    texts = [knowledge.texts(c) for c in names]
    vectors = raw_text_vectors(encoder, [t for group in texts for t in group])  # (sum of texts, E)
    bounds = np.cumsum([0] + [len(group) for group in texts])
    means = np.stack([vectors[bounds[i] : bounds[i + 1]].mean(axis=0) for i in range(len(names))])  # (C, E)
    return ClassVectors(names, means.astype(np.float32), encoder.id, knowledge)
