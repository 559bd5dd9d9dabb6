"""Class knowledge embeddings `t_c` and the cache that makes re-embedding an edit cheap.

`t_c` is the L2-normalised mean of the encoded texts of class c (its readable name and its descriptions);
`class_vector` is the one function that makes it, for training, checkpoints, edits and evaluation alike.
Unit length because rho_av is unit length (the model normalises its output), so the alignment loss can only
reach knowledge on the unit sphere; the margins use cosines anyway. Knowledge embeddings are
frozen, so every text is encoded once per encoder: the cache is keyed by (encoder id, exact text), and an
edit of one description costs one encoded text.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kda.knowledge.store import Knowledge, KnowledgeError, atomic_write

CACHE_FORMAT = "kda-embedding-cache/1"


class EmbeddingCache:
    """(encoder id, text) -> (dim,) float32 vector, in memory and optionally in an .npz file.

    Counters (`encoder_calls`, `texts_encoded`, `hits`) say how much work was really done. A persisted
    cache also stores each encoder's weight fingerprint and drops that encoder's vectors when the weights
    behind the same id differ (random weights from another torch version, say).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.vectors: dict[tuple[str, str], np.ndarray] = {}
        self.fingerprints: dict[str, str] = {}  # encoder id -> weight fingerprint the vectors came from
        self.encoder_calls = 0
        self.texts_encoded = 0
        self.hits = 0
        if self.path is not None and self.path.exists():
            self.load(self.path)

    def __len__(self) -> int:
        return len(self.vectors)

    def embed(self, encoder, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) vectors of `texts`; only texts not cached yet are encoded, in one encoder call."""
        self.check_fingerprint(encoder)
        missing = list(dict.fromkeys(t for t in texts if (encoder.id, t) not in self.vectors))
        new = set(missing)
        self.hits += sum(1 for t in texts if t not in new)
        if missing:
            encoded = encoder.encode(missing)  # (M, dim)
            self.encoder_calls += 1
            self.texts_encoded += len(missing)
            self.vectors.update({(encoder.id, t): v for t, v in zip(missing, encoded, strict=True)})
        if not texts:
            return np.zeros((0, encoder.dim), np.float32)
        return np.stack([self.vectors[(encoder.id, t)] for t in texts])

    def check_fingerprint(self, encoder) -> None:
        fingerprint = getattr(encoder, "fingerprint", None)
        if self.path is None or fingerprint is None:
            return  # an in-memory cache only ever sees the encoder objects of this process
        current = fingerprint()
        if self.fingerprints.get(encoder.id, current) != current:
            self.vectors = {k: v for k, v in self.vectors.items() if k[0] != encoder.id}
        self.fingerprints[encoder.id] = current

    def save(self, path: str | Path | None = None) -> Path:
        """Write all vectors to an .npz file (atomically); one group of arrays per encoder."""
        path = Path(path or self.path or "")
        if not path.name:
            raise KnowledgeError("EmbeddingCache.save needs a path (none was given when the cache was made)")
        arrays: dict[str, np.ndarray] = {"format": np.array(CACHE_FORMAT)}
        encoders = sorted({e for e, _ in self.vectors})
        arrays["encoders"] = np.array(encoders, dtype=str)
        arrays["fingerprints"] = np.array([self.fingerprints.get(e, "") for e in encoders], dtype=str)
        for i, encoder_id in enumerate(encoders):
            texts = [t for e, t in self.vectors if e == encoder_id]
            arrays[f"texts_{i}"] = np.array(texts, dtype=str)
            arrays[f"vectors_{i}"] = np.stack([self.vectors[(encoder_id, t)] for t in texts]).astype(np.float32)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return atomic_write(path, buffer.getvalue())

    def load(self, path: str | Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["format"]) != CACHE_FORMAT:
                    raise KnowledgeError(
                        f"{path} is not an embedding cache ({CACHE_FORMAT}); delete it or pass another path"
                    )
                for i, encoder_id in enumerate(f["encoders"]):
                    self.fingerprints[str(encoder_id)] = str(f["fingerprints"][i])
                    for text, vector in zip(f[f"texts_{i}"], f[f"vectors_{i}"], strict=True):
                        self.vectors[(str(encoder_id), str(text))] = vector
        except (OSError, KeyError, ValueError) as e:
            raise KnowledgeError(f"cannot read embedding cache {path}: {e}; delete it to start afresh") from e


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm (all-zero rows stay zero). (N, E) -> (N, E) float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def class_vector(text_vectors: np.ndarray) -> np.ndarray:
    """t_c from the encoded texts of one class: their mean, L2-normalised. (T, E) -> (E,) float32."""
    return unit_rows(np.asarray(text_vectors, dtype=np.float32).mean(axis=0))


def class_embeddings(
    knowledge: Knowledge, encoder, cache: EmbeddingCache | None = None, class_ids: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """class id -> t_c (dim,) float32 (`class_vector` of the class's encoded texts, name included); only texts
    the cache has not seen are encoded."""
    cache = cache if cache is not None else EmbeddingCache()
    ids = list(class_ids) if class_ids is not None else knowledge.class_ids
    texts = [knowledge.texts(c) for c in ids]
    vectors = cache.embed(encoder, [t for group in texts for t in group])  # (sum of texts, dim)
    bounds = np.cumsum([0] + [len(group) for group in texts])
    return {c: class_vector(vectors[bounds[i] : bounds[i + 1]]) for i, c in enumerate(ids)}


def embedding_matrix(embeddings: dict[str, np.ndarray], class_ids: Sequence[str]) -> np.ndarray:
    """(C, dim) rows in the order of `class_ids`."""
    return np.stack([embeddings[c] for c in class_ids])
