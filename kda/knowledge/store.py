"""Class knowledge: each class's readable name and its descriptions, with provenance, and the JSON file
format `kda-knowledge/1` that a person can read and edit.

    {"format": "kda-knowledge/1",
     "class_set": "UCF-GZSL",
     "provenance": {"author": ..., "method": ..., "prompts": {aspect: prompt}, "created": "YYYY-MM-DD", ...},
     "classes": {"<class id>": {"name": "<readable name>",
                                "descriptions": [{"aspect": "introduction", "text": "...",
                                                  optional "author", "created", "prompt"}, ...]}}}

Class ids are the benchmark's spelling (all_class.txt); classes are matched by `class_key` of their id or
readable name, the same case-insensitive key the benchmark reader uses, never by position. A description's
own `author` / `created` / `prompt` override the file-level provenance.

"""

from __future__ import annotations

import datetime
import difflib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kda.errors import KdaError
from kda.names import class_key, match_classes

FORMAT = "kda-knowledge/1"
ASPECTS = ("introduction", "visual", "auditory")  # the paper's three questions, in this order
PROVENANCE_FIELDS = ("author", "created", "prompt")  # per-description overrides of the file-level provenance
FILE_KEYS = ("format", "class_set", "provenance", "classes")
CLASS_KEYS = ("name", "descriptions")
DESCRIPTION_KEYS = ("aspect", "text", *PROVENANCE_FIELDS)


@dataclass(frozen=True)
class Caps:
    """What one person may type or import into a knowledge session (the app's visitors, API callers): product
    rules, each stated in the message that enforces it. Files a researcher loads (`load_knowledge`, a
    checkpoint's own knowledge) are not capped; the bundled ones stay far below (names 39 characters, descriptions
    202)."""

    name_chars: int = 100  # a class name; longer ones squeeze the heatmaps' axes into a corner
    description_chars: int = 2_000  # one description; the text encoders read at most a few hundred tokens anyway
    import_bytes: int = 2**20  # one imported knowledge file (about 500 descriptions at the cap)
    added_classes: int = 100  # classes one session may add to the checkpoint's


CAPS = Caps()


class KnowledgeError(KdaError, ValueError):
    """A knowledge file or edit is malformed, or its classes do not match what was asked."""


def today() -> str:
    return datetime.date.today().isoformat()


@dataclass(frozen=True)
class Description:
    """One text about a class; frozen so that a base snapshot can share it with the edited state."""

    aspect: str  # one of ASPECTS, or any other word ("other", "habitat", ...)
    text: str
    author: str | None = None  # None: the file-level provenance applies
    created: str | None = None
    prompt: str | None = None

    def to_json(self) -> dict[str, str]:
        data = {"aspect": self.aspect, "text": self.text}
        data.update({k: getattr(self, k) for k in PROVENANCE_FIELDS if getattr(self, k) is not None})
        return data


@dataclass(frozen=True)
class ClassKnowledge:
    name: str  # readable name; it is encoded as the first text
    descriptions: tuple[Description, ...] = ()

    @property
    def texts(self) -> list[str]:
        return [self.name] + [d.text for d in self.descriptions]

    def aspect(self, aspect: str) -> Description | None:
        return next((d for d in self.descriptions if d.aspect == aspect), None)

    def is_complete(self, aspects: Iterable[str] = ASPECTS) -> bool:
        """True when every aspect has a non-empty description."""
        return all((d := self.aspect(a)) is not None and d.text.strip() for a in aspects)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "descriptions": [d.to_json() for d in self.descriptions]}


@dataclass
class Knowledge:
    """The knowledge of one class set: the texts of each class, in file order. Editing with undo and reset is
    `kda.knowledge.session.KnowledgeSession`'s work; this is the document."""

    class_set: str
    classes: dict[str, ClassKnowledge] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)  # file it came from, for messages

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, class_id: object) -> bool:
        return class_id in self.classes

    @property
    def class_ids(self) -> list[str]:
        return list(self.classes)

    def get(self, class_id: str) -> ClassKnowledge:
        if class_id not in self.classes:
            found = self.find(class_id)
            if found is None:
                raise KnowledgeError(f"{self.label}: no class {class_id!r}{suggest(class_id, self.names())}")
            class_id = found
        return self.classes[class_id]

    def texts(self, class_id: str) -> list[str]:
        """[readable name, description texts...]: what the class embedding averages."""
        return self.get(class_id).texts

    def names(self) -> list[str]:
        return [c.name for c in self.classes.values()]

    @property
    def label(self) -> str:
        return f"knowledge {self.class_set!r}" + (f" ({self.source})" if self.source else "")

    # -- matching by name ------------------------------------------------------------------------

    def find(self, name_or_id: str) -> str | None:
        """The class id whose id, or else readable name, matches `name_or_id` case-insensitively."""
        return self.align_optional([name_or_id])[0]

    def align_optional(self, classes: Sequence[Any]) -> list[str | None]:
        """The knowledge class id each of `classes` (names, ids, or (id, name) pairs) names, or None."""
        ids = list(self.classes)
        rows = match_classes(classes, [(c, k.name) for c, k in self.classes.items()])
        return [None if row is None else ids[row] for row in rows]

    def resolve(self, name_or_id: str) -> str:
        found = self.find(name_or_id)
        if found is None:
            raise KnowledgeError(f"{self.label}: no class named {name_or_id!r}{suggest(name_or_id, self.names())}")
        return found

    # -- changes -----------------------------------------------------------------------------------

    def set_class(self, class_id: str, entry: ClassKnowledge) -> None:
        """Add or replace one class's knowledge (after validating it)."""
        validate_class(class_id, entry.to_json(), f"{self.label}: class {class_id!r}")
        for name in (class_id, entry.name):
            other = self.find(name)
            if other is not None and other != class_id:
                where = f" ({self.label})" if self.source else ""  # a file's path; a session's copy has none
                raise KnowledgeError(f"{name!r} is already the name of class {other!r}{where}; pick another name")
        self.classes[class_id] = entry

    def copy(self, source: str | None = None) -> Knowledge:
        """An independent copy (entries are immutable, so sharing them is safe): one per session, which is no
        longer the file it came from (`source`, for messages, None by default)."""
        return Knowledge(self.class_set, dict(self.classes), dict(self.provenance), source)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "class_set": self.class_set,
            "provenance": self.provenance,
            "classes": {c: k.to_json() for c, k in self.classes.items()},
        }


# ---------------------------------------------------------------------------------------------
# Reading, validating, writing


def check_caps(entry: ClassKnowledge, caps: Caps, before: ClassKnowledge | None = None) -> None:
    """Refuse a class a person typed or imported whose name or a description is over `caps`; what it kept
    from `before` (its previous state) is not theirs to shorten."""
    kept = set() if before is None else set(before.texts)
    if entry.name not in kept and len(entry.name) > caps.name_chars:
        raise KnowledgeError(
            f"the class name {shortened(entry.name)!r} is {len(entry.name):,} characters long; "
            f"a name may have at most {caps.name_chars}"
        )
    for d in entry.descriptions:
        if d.text not in kept and len(d.text) > caps.description_chars:
            raise KnowledgeError(
                f"the {d.aspect} description of {shortened(entry.name)!r} is {len(d.text):,} characters long; "
                f"a description may have at most {caps.description_chars:,}"
            )


def shortened(text: str, chars: int = 40) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def preview(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def suggest(name: str, choices: Iterable[str]) -> str:
    by_key = {class_key(c): c for c in choices}
    close = difflib.get_close_matches(class_key(name), list(by_key), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(by_key[c]) for c in close)}?)" if close else ""


def require(condition: bool, where: str, what: str) -> None:
    if not condition:
        raise KnowledgeError(f"{where}: {what}")


def check_keys(data: dict, allowed: Sequence[str], where: str) -> None:
    """Unknown keys are rejected so that a typo in a hand-edited file ('descripton') is not silently lost."""
    unknown = [k for k in data if k not in allowed]
    require(not unknown, where, f"unknown keys {preview(unknown)}; allowed keys are {', '.join(allowed)}")


def validate_class(class_id: str, data: Any, where: str) -> ClassKnowledge:
    require(isinstance(data, dict), where, "must be an object with 'name' and 'descriptions'")
    check_keys(data, CLASS_KEYS, where)
    require(isinstance(class_id, str) and class_id.strip() != "", where, "class ids must be non-empty strings")
    name = data.get("name")
    require(
        isinstance(name, str) and name.strip() != "",
        where,
        "'name' must be a non-empty string (the readable class name)",
    )
    items = data.get("descriptions", [])
    require(isinstance(items, list), where, "'descriptions' must be a list of {'aspect', 'text'} objects")
    descriptions = []
    for i, item in enumerate(items):
        at = f"{where} description {i}"
        require(isinstance(item, dict), at, "must be an object with 'aspect' and 'text'")
        check_keys(item, DESCRIPTION_KEYS, at)
        for key in ("aspect", "text"):
            require(
                isinstance(item.get(key), str) and item[key].strip() != "", at, f"{key!r} must be a non-empty string"
            )
        for key in PROVENANCE_FIELDS:
            require(item.get(key) is None or isinstance(item[key], str), at, f"{key!r} must be a string")
        descriptions.append(Description(**item))
    return ClassKnowledge(name, tuple(descriptions))


def parse_knowledge(data: Any, source: str | None = None) -> Knowledge:
    """Validate the JSON of a knowledge file; every error names the place and what is expected."""
    where = source or "knowledge"
    require(isinstance(data, dict), where, f"must be a JSON object with 'format': {FORMAT!r}")
    require(data.get("format") == FORMAT, where, f"'format' is {data.get('format')!r}, expected {FORMAT!r}")
    check_keys(data, FILE_KEYS, where)
    class_set = data.get("class_set")
    require(
        isinstance(class_set, str) and class_set.strip() != "",
        where,
        "'class_set' must be a non-empty string such as 'UCF-GZSL'",
    )
    provenance = data.get("provenance", {})
    require(isinstance(provenance, dict), where, "'provenance' must be an object (author, method, prompts, created)")
    classes = data.get("classes")
    require(
        isinstance(classes, dict), where, "'classes' must be an object mapping class ids to {'name', 'descriptions'}"
    )
    parsed: dict[str, ClassKnowledge] = {}
    seen: dict[str, str] = {}  # class_key of ids and names -> class id, to catch duplicates
    for class_id, entry in classes.items():
        knowledge = validate_class(class_id, entry, f"{where}: class {class_id!r}")
        for key in {class_key(class_id), class_key(knowledge.name)}:
            require(
                key not in seen, where, f"class {class_id!r} ({knowledge.name!r}) duplicates class {seen.get(key)!r}"
            )
            seen[key] = class_id
        parsed[class_id] = knowledge
    return Knowledge(class_set, parsed, provenance, source=source)


def load_knowledge(path: str | Path) -> Knowledge:
    path = Path(path)
    if not path.is_file():
        raise KnowledgeError(f"knowledge file {path} does not exist")
    return parse_knowledge(read_json(path), str(path))


def read_json(path: Path, max_bytes: int | None = None, name: str | None = None) -> Any:
    """The JSON document in `path` (refused unread past `max_bytes`); every error says what is wrong and where,
    with the file called `name` (default: its path)."""
    name = name or str(path)
    with path.open("rb") as f:
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise KnowledgeError(f"{name} is over the {max_bytes // 1024} KB limit of a knowledge import")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise KnowledgeError(f"{name} is not UTF-8 text (byte {e.start} cannot be read)") from e
    except json.JSONDecodeError as e:
        raise KnowledgeError(f"{name} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from e
    except RecursionError as e:  # json recurses once per nesting level
        raise KnowledgeError(
            f"{name} is nested too deeply to read (a knowledge file is an object of classes, each with a list of "
            "descriptions: four levels)"
        ) from e


def save_knowledge(knowledge: Knowledge, path: str | Path) -> Path:
    """Write atomically: readers (and a crash mid-write) see the old file or the new one, never half."""
    text = json.dumps(knowledge.to_json(), indent=2, ensure_ascii=False) + "\n"
    return atomic_write(Path(path), text.encode("utf-8"))


def atomic_write(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode(path))  # mkstemp makes 0600 files; keep the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def file_mode(path: Path) -> int:
    """The mode of the file being replaced, or what a plain open() would give a new file."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def with_file_provenance(description: Description, provenance: dict[str, Any]) -> Description:
    """Drop per-description provenance that merely repeats the file level (keeps files readable)."""
    prompts = provenance.get("prompts") or {}
    inherited = {
        "author": provenance.get("author"),
        "created": provenance.get("created"),
        "prompt": prompts.get(description.aspect),
    }
    return replace(description, **{k: None for k in PROVENANCE_FIELDS if getattr(description, k) == inherited[k]})
