"""The class matrix: one row t_c per class, the target the model maps videos to. It is made from the class's
texts (its readable name and descriptions) by a text encoder, or read from a file of precomputed vectors, and
bound to a class list by name, never by row order.

Two forms, chosen by the preset and recorded in the checkpoint (`FORMS`):
  * "unit": t_c is the L2-normalised mean of the class's encoded (unit) text vectors. rho_av is unit length
    (the model normalises its output), so the alignment loss can only reach targets on the unit sphere, and
    the margins use cosines anyway.
  * "raw-mean": t_c is the plain mean of the raw (not yet normalised) text embeddings, as the released code
    made its targets; precomputed vectors are then taken as they are.

`ClassMatrixBuilder` is the one place texts become rows, for training, checkpoints and editing sessions alike.
Text vectors are frozen, so every text is encoded once per (encoder, form): an edit of one description costs
one encoded text, and a class whose texts equal the checkpoint's gets the checkpoint's own row back.

Precomputed files:
  * `.npz` with `names` (C,) str, `embeddings` (C, E) float, optional `encoder` (str);
  * `.json` `{"encoder": str, "embeddings": {class name: [floats]}}`, or plainly `{class name: [floats]}`.
"""

from __future__ import annotations

import json
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kda.errors import KdaError
from kda.knowledge.encoders import DEFAULT_TEXT_ENCODER, load_text_encoder
from kda.knowledge.sources import SOURCES, named_knowledge
from kda.knowledge.store import Knowledge, load_knowledge
from kda.names import match_classes

UNIT, RAW_MEAN = "unit", "raw-mean"
FORMS = (UNIT, RAW_MEAN)
PRECOMPUTED = "precomputed"  # encoder id of vectors that came from a file, not from texts
RECENT_TEXTS = 8192  # texts a builder keeps beyond the checkpoint's: ~4 KB each at the caps, ~32 MB in all


class KnowledgeMismatchError(KdaError):
    """Knowledge and class list do not match by name."""


def check_form(form: str) -> str:
    if form not in FORMS:
        raise KdaError(f"unknown class-matrix form {form!r}; choose one of {', '.join(FORMS)}")
    return form


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm (all-zero rows stay zero). (N, E) -> (N, E) float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def class_row(text_vectors: np.ndarray, form: str) -> np.ndarray:
    """t_c from the vectors of one class's texts (T, E) -> (E,) float32: their mean, unit length in "unit" form."""
    mean = np.asarray(text_vectors, dtype=np.float32).mean(axis=0)
    return unit_rows(mean) if form == UNIT else mean.astype(np.float32)


def infer_form(rows: np.ndarray) -> str:
    """The form of a stored class matrix that does not say (checkpoints before forms were recorded)."""
    norms = np.linalg.norm(np.asarray(rows, dtype=np.float64), axis=-1)
    return UNIT if np.allclose(norms, 1.0, atol=1e-3) else RAW_MEAN


@dataclass
class TextVectors:
    """The vector of every text a class matrix was built from, and the encoder (id and weight fingerprint) and
    form that made them: kept in checkpoints, so an edit re-encodes the edited description alone."""

    encoder: str
    fingerprint: str
    vectors: dict[str, np.ndarray]  # text -> (E,)
    form: str = UNIT

    def only(self, texts: set[str]) -> TextVectors:
        return TextVectors(
            self.encoder, self.fingerprint, {t: v for t, v in self.vectors.items() if t in texts}, self.form
        )


class ClassMatrixBuilder:
    """A text encoder, a form and the vectors of texts encoded so far: class rows from knowledge texts.
    Shared by every session of a studio, so it is thread-safe. `texts_encoded` counts the real encoder work.

    The checkpoint's own texts (`vectors`, from `seed`) are kept for good; texts encoded since (`recent`, every
    visitor's edits) are kept up to RECENT_TEXTS, the least recently used dropped first. The lock guards these
    dictionaries only: encoding runs outside it, so callers take turns at the encoder (its own lock), batch by
    batch, and one caller's long list never makes another wait for all of it."""

    def __init__(self, encoder, form: str = UNIT):
        self.encoder = encoder
        self.form = check_form(form)
        self.vectors: dict[str, np.ndarray] = {}  # the checkpoint's text -> (E,), in this encoder and form
        self.recent: OrderedDict[str, np.ndarray] = OrderedDict()  # other texts, least recently used first
        self.texts_encoded = 0
        self.lock = threading.Lock()

    def seed(self, stored: TextVectors | None) -> bool:
        """Take a checkpoint's stored text vectors when the same weights made them in the same form."""
        ok = stored is not None and (stored.encoder, stored.fingerprint, stored.form) == (
            self.encoder.id,
            self.encoder.fingerprint(),
            self.form,
        )
        if ok:
            with self.lock:
                self.vectors.update(stored.vectors)
        return ok

    def known(self, text: str) -> np.ndarray | None:
        """The vector of `text` if it was encoded before (marked as just used). Called holding the lock."""
        if text in self.vectors:
            return self.vectors[text]
        if text in self.recent:
            self.recent.move_to_end(text)
            return self.recent[text]
        return None

    def text_vectors(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """(N, E) vectors of `texts`, and how many of them had to be encoded (the others were encoded before)."""
        if not texts:
            return np.zeros((0, self.encoder.dim), np.float32), 0
        with self.lock:
            found = {t: v for t in dict.fromkeys(texts) if (v := self.known(t)) is not None}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            encoded = self.encoder.encode(missing, normalize=self.form == UNIT)  # (M, E), outside the lock
            found.update(zip(missing, encoded, strict=True))
            with self.lock:
                self.texts_encoded += len(missing)
                self.recent.update(zip(missing, encoded, strict=True))
                while len(self.recent) > RECENT_TEXTS:
                    self.recent.popitem(last=False)
        return np.stack([found[t] for t in texts]), len(missing)

    def rows(self, knowledge: Knowledge, class_ids: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
        """class id -> t_c (E,) of `class_ids` (default: every class) from each class's name and descriptions,
        and how many texts had to be encoded."""
        ids = list(class_ids) if class_ids is not None else knowledge.class_ids
        texts = [knowledge.texts(c) for c in ids]
        vectors, encoded = self.text_vectors([t for group in texts for t in group])  # (sum of texts, E)
        bounds = np.cumsum([0] + [len(group) for group in texts])
        return {c: class_row(vectors[bounds[i] : bounds[i + 1]], self.form) for i, c in enumerate(ids)}, encoded


@dataclass
class ClassMatrix:
    names: list[str]
    vectors: np.ndarray  # (C, E) float32
    encoder: str  # text encoder id, or PRECOMPUTED
    knowledge: Knowledge | None = None  # the texts the rows were built from, keyed like `names`
    text_vectors: TextVectors | None = field(default=None, repr=False)  # each text's own vector
    form: str = UNIT

    def bind(self, classes: list[str], known: list[str] | None = None) -> ClassMatrix:
        """The rows of `classes`, in that order (names matched case-insensitively). Classes missing from the
        matrix, or rows of classes outside `known` (default: `classes`), are errors naming them."""
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
        knowledge = text_vectors = None
        if self.knowledge is not None:  # the same texts, keyed by the bound spelling of each class
            k = self.knowledge
            entries = {c: k.classes[self.names[i]] for c, i in zip(classes, rows, strict=True)}
            knowledge = Knowledge(k.class_set, entries, dict(k.provenance), source=k.source)
            if self.text_vectors is not None:
                text_vectors = self.text_vectors.only({t for c in knowledge.class_ids for t in knowledge.texts(c)})
        return ClassMatrix(list(classes), self.vectors[rows], self.encoder, knowledge, text_vectors, self.form)


def encode_knowledge(knowledge: Knowledge, encoder, form: str = UNIT) -> ClassMatrix:
    """The class matrix of every class of `knowledge`, with the vector of each text it was built from."""
    names = knowledge.class_ids
    texts = list(dict.fromkeys(t for c in names for t in knowledge.texts(c)))
    builder = ClassMatrixBuilder(encoder, form)
    vectors, _ = builder.text_vectors(texts)  # (T, E)
    text_vectors = TextVectors(encoder.id, encoder.fingerprint(), dict(zip(texts, vectors, strict=True)), form)
    builder.seed(text_vectors)  # every text at hand however many there are (the recent cache is bounded)
    rows, _ = builder.rows(knowledge)
    return ClassMatrix(names, np.stack([rows[c] for c in names]), encoder.id, knowledge, text_vectors, form)


# ---------------------------------------------------------------------------------------------
# Files


def save_class_matrix(path: str | Path, names: list[str], vectors: np.ndarray, encoder: str = PRECOMPUTED) -> Path:
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


def load_class_matrix(
    path: str | Path, text_encoder: str | None = None, form: str = UNIT, dataset: str | None = None
) -> ClassMatrix:
    """A knowledge file encoded with `text_encoder` (its id), or a file of precomputed vectors (unit rows in
    "unit" form, as stored in "raw-mean" form); or, with the benchmark's `dataset`, the knowledge a source name
    of `kda.knowledge.sources` gives ("ours", "released"), encoded."""
    check_form(form)
    if str(path) in SOURCES:
        if dataset is None:
            raise KdaError(f"knowledge {str(path)!r} names a source; it needs the benchmark's dataset")
        knowledge = named_knowledge(str(path), dataset)
        return encode_knowledge(knowledge, load_text_encoder(text_encoder or DEFAULT_TEXT_ENCODER), form)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"knowledge file {path} does not exist")
    if path.suffix == ".npz":
        matrix = read_npz(path)
    elif path.suffix == ".json":
        data = read_json(path)
        if isinstance(data, dict) and str(data.get("format", "")).startswith("kda-knowledge/"):
            return encode_knowledge(load_knowledge(path), load_text_encoder(text_encoder or DEFAULT_TEXT_ENCODER), form)
        matrix = read_json_vectors(path, data)
    else:
        raise KdaError(f"{path}: knowledge must be a .json knowledge/embeddings file or an .npz embeddings file")
    matrix.form = form
    if form == UNIT:
        matrix.vectors = unit_rows(matrix.vectors)
    return matrix


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise KdaError(f"{path} is not valid JSON: {e}") from e


def read_json_vectors(path: Path, data) -> ClassMatrix:
    if isinstance(data, dict) and "embeddings" in data:
        names = list(data["embeddings"])
        vectors = np.asarray([data["embeddings"][n] for n in names], dtype=np.float32)
        return ClassMatrix(names, vectors, data.get("encoder", PRECOMPUTED))
    if not (isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values())):  # {class: [floats]}
        raise KdaError(f"{path}: neither a knowledge file ('format': 'kda-knowledge/1') nor an embeddings file")
    try:
        vectors = np.asarray(list(data.values()), dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise KdaError(f"{path}: every class must map to a list of numbers of the same length ({e})") from e
    if vectors.ndim != 2:
        raise KdaError(f"{path}: every class must map to a list of numbers of the same length")
    return ClassMatrix(list(data), vectors, PRECOMPUTED)


def read_npz(path: Path) -> ClassMatrix:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"names", "embeddings"} - set(f.files)
            if missing:
                raise KdaError(f"{path} lacks arrays {sorted(missing)}; expected 'names' and 'embeddings'")
            encoder = str(f["encoder"]) if "encoder" in f.files else PRECOMPUTED
            return ClassMatrix([str(n) for n in f["names"]], f["embeddings"].astype(np.float32), encoder)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # damaged, or arrays that need unpickling
        raise KdaError(f"{path} is not a readable .npz embeddings file ({e})") from e
