"""One person's editable copy of a checkpoint's knowledge, and the class matrix t_c it implies.

Every change (edit, regenerate, add a class, import, reset, undo) rebuilds t_c only for the classes whose
texts changed, through the shared embedding cache (so only texts never seen before are encoded) and with
`kda.knowledge.embed.class_vector`, the same pooling and normalisation training used. A class whose texts
equal the checkpoint's uses the checkpoint's own row, so *reset* restores predictions exactly. A change that
fails (bad input, an unreachable LLM) leaves the session as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kda.errors import KdaError
from kda.knowledge.embed import EmbeddingCache, class_embeddings
from kda.knowledge.generate import LLMSettings, describe_class
from kda.knowledge.store import ClassKnowledge, Knowledge, KnowledgeError, parse_knowledge, with_file_provenance

UNDO_DEPTH = 50  # changes a session can take back


class NotEditableError(KdaError):
    """The session's knowledge cannot be re-encoded (no texts, or no text encoder)."""


class Embedder:
    """A text encoder and the embedding cache, shared by every session of a studio (thread-safe)."""

    def __init__(self, encoder, cache: EmbeddingCache | None = None):
        self.encoder = encoder
        self.cache = cache if cache is not None else EmbeddingCache()
        self.lock = threading.Lock()

    def __call__(self, knowledge: Knowledge, class_ids: Sequence[str]) -> tuple[dict[str, np.ndarray], int]:
        """t_c of `class_ids`, and how many texts had to be encoded (the rest came from the cache)."""
        with self.lock:
            before = self.cache.texts_encoded
            vectors = class_embeddings(knowledge, self.encoder, self.cache, class_ids)
            return vectors, self.cache.texts_encoded - before


@dataclass(frozen=True)
class Snapshot:
    classes: dict[str, ClassKnowledge]
    seen: dict[str, bool]
    vectors: dict[str, np.ndarray]


class KnowledgeSession:
    """`class_ids`, `names`, `seen` and `matrix` (C, E) describe the candidate classes as they stand now."""

    def __init__(
        self,
        knowledge: Knowledge,
        vectors: np.ndarray,
        seen: Sequence[bool],
        embedder: Embedder | None = None,
        why_not_editable: str = "",
    ):
        self.knowledge = knowledge.copy()
        self.knowledge.mark_base()
        self.base_vectors = {c: v for c, v in zip(knowledge.class_ids, vectors, strict=True)}
        self.vectors = dict(self.base_vectors)
        self.seen_by_id = {c: bool(s) for c, s in zip(knowledge.class_ids, seen, strict=True)}
        self.embedder = embedder
        self.why_not_editable = why_not_editable if embedder is None else ""
        self.history: list[Snapshot] = []
        self.version = 0
        self.last_encoded = 0  # texts the last change encoded (cache misses)
        self.lock = threading.RLock()  # one person can fire two events at once (two tabs, a double click)

    # -- what the model compares videos with --------------------------------------------------------

    @property
    def editable(self) -> bool:
        return self.embedder is not None

    @property
    def class_ids(self) -> list[str]:
        return self.knowledge.class_ids

    @property
    def names(self) -> list[str]:
        return self.knowledge.names()

    @property
    def seen(self) -> np.ndarray:
        return np.array([self.seen_by_id[c] for c in self.class_ids], dtype=bool)

    @property
    def matrix(self) -> np.ndarray:
        return np.stack([self.vectors[c] for c in self.class_ids]).astype(np.float32)  # (C, E)

    def entry(self, class_id: str) -> ClassKnowledge:
        return self.knowledge.get(class_id)

    # -- changes --------------------------------------------------------------------------------------

    def edit(self, class_id: str, texts: Sequence[str], name: str | None = None) -> ClassKnowledge:
        """Replace a class's descriptions (in order; empty ones are dropped) and optionally its name."""
        class_id = self.knowledge.resolve(class_id)
        return self.change(lambda: self.knowledge.edit(class_id, texts, name=name), [class_id])

    def add_class(self, name: str, descriptions: Sequence[str] = ()) -> str:
        """A new class by its readable name: an unseen candidate at once (described by `descriptions`, or by
        its name alone until it is described)."""

        def add() -> str:
            class_id = self.knowledge.add_class(name, descriptions)
            self.seen_by_id[class_id] = False
            return class_id

        before = set(self.class_ids)
        return self.change(add, lambda: [c for c in self.class_ids if c not in before])

    def regenerate(self, class_ids: Sequence[str], settings: LLMSettings) -> list[str]:
        """Ask the LLM the paper's three questions again for each class; all or nothing."""
        ids = [self.knowledge.resolve(c) for c in class_ids]
        if not ids:
            raise KnowledgeError("choose at least one class to regenerate")
        self.require_editable()

        def regenerate() -> list[str]:
            entries = {c: describe_class(self.knowledge.get(c).name, settings) for c in ids}  # may raise LLMError
            for c, entry in entries.items():
                descriptions = tuple(with_file_provenance(d, self.knowledge.provenance) for d in entry.descriptions)
                self.knowledge.set_class(c, ClassKnowledge(entry.name, descriptions))
            return ids

        return self.change(regenerate, ids)

    def import_json(self, data: Any) -> dict[str, list[str]]:
        """Replace the knowledge by a `kda-knowledge/1` document. It must describe every class of the session
        (matched by id or name); classes it adds become new unseen classes. Returns {"changed", "added"}."""
        incoming = parse_knowledge(data, "imported knowledge")
        matches = self.knowledge.align_optional([(c, k.name) for c, k in incoming.classes.items()])
        missing = [c for c in self.class_ids if c not in set(matches)]
        if missing:
            raise KnowledgeError(
                f"imported knowledge lacks {len(missing)} of the {len(self.class_ids)} classes: "
                f"{', '.join(missing[:8])}; export the current knowledge to get a complete file"
            )
        changed = [
            m for m, entry in zip(matches, incoming.classes.values(), strict=True) if m and entry != self.entry(m)
        ]
        added = [c for c, m in zip(incoming.classes, matches, strict=True) if m is None]

        def apply() -> dict[str, list[str]]:
            for m, (c, entry) in zip(matches, incoming.classes.items(), strict=True):
                self.knowledge.set_class(m or c, entry)
                self.seen_by_id.setdefault(m or c, False)
            return {"changed": changed, "added": added}

        return self.change(apply, changed + added)

    def export_json(self) -> dict:
        return self.knowledge.to_json()

    def reset(self, class_id: str | None = None) -> None:
        """Back to the checkpoint's knowledge: one class, or everything (added classes are removed)."""
        if class_id is not None:
            class_id = self.knowledge.resolve(class_id)

        def reset() -> None:
            self.knowledge.reset(class_id)
            self.seen_by_id = {c: self.seen_by_id[c] for c in self.class_ids}
            self.vectors = {c: v for c, v in self.vectors.items() if c in self.seen_by_id}

        self.change(reset, [class_id] if class_id else list(self.base_vectors), needs_encoder=False)

    def undo(self) -> bool:
        """Take back the last change; False when there is none."""
        with self.lock:
            if not self.history:
                return False
            self.restore(self.history.pop())
            self.version += 1
            self.last_encoded = 0
            return True

    # -- machinery ------------------------------------------------------------------------------------

    def require_editable(self) -> None:
        if not self.editable:
            raise NotEditableError(f"this checkpoint's knowledge cannot be edited: {self.why_not_editable}")

    def snapshot(self) -> Snapshot:
        return Snapshot(dict(self.knowledge.classes), dict(self.seen_by_id), dict(self.vectors))

    def restore(self, snapshot: Snapshot) -> None:
        self.knowledge.classes = dict(snapshot.classes)
        self.seen_by_id = dict(snapshot.seen)
        self.vectors = dict(snapshot.vectors)

    def change(self, apply: Callable[[], Any], touched, needs_encoder: bool = True):
        """Run `apply`, then rebuild t_c of the `touched` classes (a list, or a function giving it after
        `apply`); on any error, put everything back as it was."""
        if needs_encoder:
            self.require_editable()
        with self.lock:
            before = self.snapshot()
            try:
                result = apply()
                self.refresh(touched() if callable(touched) else touched)
            except BaseException:
                self.restore(before)
                raise
            self.history = [*self.history[-(UNDO_DEPTH - 1) :], before]
            self.version += 1
            return result

    def refresh(self, class_ids: Sequence[str]) -> None:
        """t_c of `class_ids`: the checkpoint's row when the class is as the checkpoint has it, else encoded."""
        base = self.knowledge.base
        present = [c for c in class_ids if c in self.knowledge]
        changed = [c for c in present if not (c in self.base_vectors and base.get(c) == self.knowledge.classes[c])]
        self.vectors.update({c: self.base_vectors[c] for c in present if c not in changed})
        self.last_encoded = 0
        if changed:
            self.require_editable()
            vectors, self.last_encoded = self.embedder(self.knowledge, changed)
            self.vectors.update(vectors)
