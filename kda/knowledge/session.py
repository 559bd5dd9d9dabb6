"""One person's editable copy of a checkpoint's knowledge, and the class matrix it implies.

The session's verbs (edit, add a class, regenerate, import, reset, undo) are the only way knowledge changes.
Every change rebuilds the rows of the classes whose texts changed, with the studio's shared
`ClassMatrixBuilder` (the checkpoint's encoder and form, so an edited row is made exactly as training made
the others, and only texts never seen before are encoded). A class whose texts equal the checkpoint's gets the
checkpoint's own row, so *reset* restores predictions exactly. A change that fails (bad input, an unreachable
LLM) leaves the session as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kda.errors import KdaError
from kda.knowledge.class_matrix import ClassMatrixBuilder
from kda.knowledge.generate import LLMSettings, describe_class
from kda.knowledge.store import (
    CAPS,
    Caps,
    ClassKnowledge,
    Description,
    Knowledge,
    KnowledgeError,
    check_caps,
    parse_knowledge,
    read_json,
    today,
    with_file_provenance,
)
from kda.prediction import Candidates

UNDO_DEPTH = 50  # changes a session can take back
USER = "user"  # the author of descriptions typed in by hand


class NotEditableError(KdaError):
    """The session's knowledge cannot be re-encoded (no texts, or no text encoder)."""


def edited_entry(old: ClassKnowledge, texts: Sequence[str], name: str | None) -> ClassKnowledge:
    """`old` with its description texts replaced in order (and optionally its name). Unchanged texts keep their
    provenance, changed ones are attributed to the user today, empty ones are dropped."""
    descriptions = []
    for i, text in enumerate(t.strip() for t in texts):
        previous = old.descriptions[i] if i < len(old.descriptions) else None
        if not text:
            continue
        if previous is not None and previous.text == text:
            descriptions.append(previous)
        else:
            aspect = previous.aspect if previous is not None else "other"
            descriptions.append(Description(aspect, text, author=USER, created=today()))
    return ClassKnowledge((name or old.name).strip(), tuple(descriptions))


def new_texts(before: dict[str, ClassKnowledge], after: dict[str, ClassKnowledge], class_ids: Sequence[str]) -> int:
    """Texts of `class_ids` in `after` that the same class did not have in `before`: what a change wrote,
    whatever the shared text cache already held."""
    count = 0
    for c in dict.fromkeys(class_ids):
        if c in after and after[c] != before.get(c):
            count += len(set(after[c].texts) - set(before[c].texts if c in before else ()))
    return count


@dataclass(frozen=True)
class Snapshot:
    classes: dict[str, ClassKnowledge]
    seen: dict[str, bool]
    rows: dict[str, np.ndarray]


class KnowledgeSession:
    """`class_ids`, `names`, `seen` and `class_matrix` (C, E) describe the candidate classes as they stand now;
    `base` is the checkpoint's knowledge, which reset returns to. What a person types or imports is held to
    `caps` (`kda.knowledge.store.Caps`)."""

    def __init__(
        self,
        knowledge: Knowledge,
        class_matrix: np.ndarray,
        seen: Sequence[bool],
        builder: ClassMatrixBuilder | None = None,
        why_not_editable: str = "",
        caps: Caps = CAPS,
    ):
        self.knowledge = knowledge.copy()  # the person's own now, no longer the file it came from
        self.caps = caps
        self.base = dict(knowledge.classes)
        self.base_rows = {c: v for c, v in zip(knowledge.class_ids, class_matrix, strict=True)}
        self.rows = dict(self.base_rows)
        self.seen_by_id = {c: bool(s) for c, s in zip(knowledge.class_ids, seen, strict=True)}
        self.builder = builder
        self.why_not_editable = why_not_editable if builder is None else ""
        self.history: list[Snapshot] = []
        self.version = 0
        self.last_encoded = 0  # texts the last change encoded (encoder work, not cache hits)
        self.last_changed = 0  # texts the last change wrote that its classes did not have before
        self.lock = threading.RLock()  # one person can fire two events at once (two tabs, a double click)

    # -- what the model compares videos with --------------------------------------------------------

    @property
    def editable(self) -> bool:
        return self.builder is not None

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
    def class_matrix(self) -> np.ndarray:
        return np.stack([self.rows[c] for c in self.class_ids]).astype(np.float32)  # (C, E)

    def candidates(self) -> Candidates:
        """The classes as they stand now, for `kda.prediction`."""
        return Candidates(self.class_ids, self.names, self.seen, self.class_matrix)

    def entry(self, class_id: str) -> ClassKnowledge:
        return self.knowledge.get(class_id)

    def changed(self) -> list[str]:
        """Classes whose texts differ from the checkpoint's, added classes included."""
        return [c for c, entry in self.knowledge.classes.items() if self.base.get(c) != entry]

    # -- changes --------------------------------------------------------------------------------------

    def edit(self, class_id: str, texts: Sequence[str], name: str | None = None) -> ClassKnowledge:
        """Replace a class's descriptions (in order; empty ones are dropped) and optionally its name."""
        class_id = self.knowledge.resolve(class_id)

        def edit() -> ClassKnowledge:
            old = self.knowledge.classes[class_id]
            entry = edited_entry(old, texts, name)
            check_caps(entry, self.caps, old)
            self.knowledge.set_class(class_id, entry)
            return entry

        return self.change(edit, [class_id])

    def add_class(self, name: str, descriptions: Sequence[str] = ()) -> str:
        """A new class by its readable name (also its id): an unseen candidate at once, described by
        `descriptions`, or by its name alone until it is described."""
        name = name.strip()
        if not name:
            raise KnowledgeError("a new class needs a non-empty name")
        existing = self.knowledge.find(name)
        if existing is not None:
            called = self.knowledge.classes[existing].name
            also = "" if called == existing else f" (id {existing!r})"
            raise KnowledgeError(f"there is already a class {called!r}{also}; edit it instead of adding {name!r}")
        self.check_added(1)

        def add() -> str:
            entries = (Description("other", d.strip(), author=USER, created=today()) for d in descriptions)
            entry = ClassKnowledge(name, tuple(d for d in entries if d.text))
            check_caps(entry, self.caps)
            self.knowledge.set_class(name, entry)
            self.seen_by_id[name] = False
            return name

        return self.change(add, [name])

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
        self.check_added(len(added) - len(self.added()))  # a file exported by this session holds its additions
        for m, entry in zip(matches, incoming.classes.values(), strict=True):
            check_caps(entry, self.caps, self.knowledge.classes.get(m))

        def apply() -> dict[str, list[str]]:
            for m, (c, entry) in zip(matches, incoming.classes.items(), strict=True):
                self.knowledge.set_class(m or c, entry)
                self.seen_by_id.setdefault(m or c, False)
            return {"changed": changed, "added": added}

        return self.change(apply, changed + added)

    def import_file(self, path: str | Path, name: str | None = None) -> dict[str, list[str]]:
        """`import_json` of a knowledge file, refused unread when it is over the import cap; messages call it
        `name` (default: its file name)."""
        path = Path(path)
        return self.import_json(read_json(path, self.caps.import_bytes, name or path.name))

    def export_json(self) -> dict:
        return self.knowledge.to_json()

    def edits_json(self) -> dict | None:
        """The classes changed or added so far, as a `kda-knowledge/1` document (None while the knowledge is the
        checkpoint's): what is kept elsewhere (a visitor's browser) to start a new session with the same
        knowledge (`restore_edits`), a fraction of the whole file."""
        changed = self.changed()
        if not changed:
            return None
        data = self.export_json()
        data["classes"] = {c: data["classes"][c] for c in changed}
        return data

    def restore_edits(self, data: Any) -> list[str]:
        """Put the classes of an `edits_json` document into this session: each replaces the class of its id or
        joins as an added one, with an import's checks and caps. It starts the session over rather than being
        a change of it, so there is nothing to undo. Returns the classes restored."""
        edits = parse_knowledge(data, "saved edits")
        whole = self.export_json()
        whole["classes"] |= {c: entry.to_json() for c, entry in edits.classes.items()}
        result = self.import_json(whole)
        self.history.clear()
        return result["changed"] + result["added"]

    def reset(self, class_id: str | None = None) -> None:
        """Back to the checkpoint's knowledge: one class, or everything (added classes are removed)."""
        if class_id is not None:
            class_id = self.knowledge.resolve(class_id)
            if class_id not in self.base:
                raise KnowledgeError(f"class {class_id!r} was added in this session; there is nothing to reset it to")

        def reset() -> None:
            if class_id is None:
                self.knowledge.classes = dict(self.base)
            else:
                self.knowledge.classes[class_id] = self.base[class_id]
            self.seen_by_id = {c: self.seen_by_id[c] for c in self.class_ids}
            self.rows = {c: v for c, v in self.rows.items() if c in self.seen_by_id}

        self.change(reset, [class_id] if class_id else list(self.base_rows), needs_encoder=False)

    def undo(self) -> bool:
        """Take back the last change; False when there is none."""
        with self.lock:
            if not self.history:
                return False
            after = dict(self.knowledge.classes)
            self.restore(self.history.pop())
            self.version += 1
            self.last_encoded = 0
            self.last_changed = new_texts(after, self.knowledge.classes, list(after | self.knowledge.classes))
            return True

    # -- machinery ------------------------------------------------------------------------------------

    def added(self) -> list[str]:
        """Classes this session added to the checkpoint's."""
        return [c for c in self.class_ids if c not in self.base]

    def check_added(self, more: int) -> None:
        if more > 0 and len(self.added()) + more > self.caps.added_classes:
            raise KnowledgeError(
                f"a session may add at most {self.caps.added_classes} classes to the checkpoint's; this one has "
                f"added {len(self.added())}" + (f" and the file adds {more}" if more > 1 else "")
            )

    def require_editable(self) -> None:
        if not self.editable:
            raise NotEditableError(f"this checkpoint's knowledge cannot be edited: {self.why_not_editable}")

    def snapshot(self) -> Snapshot:
        return Snapshot(dict(self.knowledge.classes), dict(self.seen_by_id), dict(self.rows))

    def restore(self, snapshot: Snapshot) -> None:
        self.knowledge.classes = dict(snapshot.classes)
        self.seen_by_id = dict(snapshot.seen)
        self.rows = dict(snapshot.rows)

    def change(self, apply: Callable[[], Any], touched: list[str], needs_encoder: bool = True):
        """Run `apply`, then rebuild the rows of the `touched` classes; on any error, put everything back."""
        if needs_encoder:
            self.require_editable()
        with self.lock:
            before = self.snapshot()
            try:
                result = apply()
                self.refresh(touched)
            except BaseException:
                self.restore(before)
                raise
            self.history = [*self.history[-(UNDO_DEPTH - 1) :], before]
            self.version += 1
            self.last_changed = new_texts(before.classes, self.knowledge.classes, touched)
            return result

    def refresh(self, class_ids: Sequence[str]) -> None:
        """Rows of `class_ids`: the checkpoint's row when the class is as the checkpoint has it, else built."""
        present = [c for c in class_ids if c in self.knowledge]
        changed = [c for c in present if not (c in self.base_rows and self.base.get(c) == self.knowledge.classes[c])]
        self.rows.update({c: self.base_rows[c] for c in present if c not in changed})
        self.last_encoded = 0
        if changed:
            self.require_editable()
            rows, self.last_encoded = self.builder.rows(self.knowledge, changed)
            self.rows.update(rows)
