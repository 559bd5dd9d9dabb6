"""Where a benchmark's knowledge comes from, by the names `--knowledge` accepts beside a file:

    ours      the project's own descriptions, shipped in assets/knowledge/<dataset>.json
    released  the KDA authors' descriptions, the CSV their repository holds for each benchmark at one pinned
              commit: downloaded at run time, checked against its pinned SHA-256 before a byte is read, cached
              like the weights (never committed here), bound to the benchmark's classes by name

A released CSV has the header `name,description_1,description_2,description_3` and one row per class: a
readable name and three descriptions in the order of the paper's questions (introduction, visual, auditory).

Mirrors and tests: `KDA_RELEASED_ROOT` replaces the root the files are fetched from (the paths below it stay),
and `KDA_RELEASED_SHA256=UCF=<hex>,VGGSound=<hex>` names the digest of a dataset's file where the mirror serves
another file than the pinned one.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from kda.benchmark import DATASETS, builtin_classes, check_choice
from kda.files import DownloadError, cache_dir, download, sha256_of
from kda.knowledge.store import ASPECTS, ClassKnowledge, Description, Knowledge, KnowledgeError, load_knowledge
from kda.names import match_classes

OURS, RELEASED = "ours", "released"
SOURCES = (OURS, RELEASED)
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "assets" / "knowledge"

REPOSITORY = "https://github.com/chenhaoxing/KDA"
COMMIT = "05157a50e39d9a962a7b2cfbabe22227f48c8ba6"
LICENCE = "Apache-2.0"
DEFAULT_ROOT = f"https://raw.githubusercontent.com/chenhaoxing/KDA/{COMMIT}"
ROOT_VARIABLE = "KDA_RELEASED_ROOT"
DIGEST_VARIABLE = "KDA_RELEASED_SHA256"
HEADER = ["name", "description_1", "description_2", "description_3"]


@dataclass(frozen=True)
class ReleasedFile:
    path: str  # below the repository root
    size: int  # bytes, for messages
    sha256: str


RELEASED_FILES = {
    "UCF": ReleasedFile(
        "avgzsl_benchmark_datasets/UCF/class-split/UCF.csv",
        85_145,
        "397705b69a2ef8fd6abafe7c485712bd43f1b8123c81cd3e7be70154b3d14db8",
    ),
    "ActivityNet": ReleasedFile(
        "avgzsl_benchmark_datasets/ActivityNet/class-split/ActivityNet.csv",
        165_259,
        "eee1d2db42550cc561e5b2d34c0a27871c105b761df4cdb7cf07bce967e50b17",
    ),
    "VGGSound": ReleasedFile(
        "avgzsl_benchmark_datasets/VGGSound/class-split/VGGSound.csv",
        257_478,
        "18e0d4a780d5cae5cc9b5738f861bb7cb60f6147f4ee55f813ad1bc444bc4024",
    ),
}


def shipped_path(dataset: str) -> Path:
    check_choice(dataset, DATASETS, "dataset")
    return SHIPPED_DIR / f"{DATASETS[dataset]}.json"


def named_knowledge(source: str, dataset: str) -> Knowledge:
    """The knowledge `ours` or `released` names for one benchmark."""
    check_choice(source, SOURCES, "knowledge source")
    return load_knowledge(shipped_path(dataset)) if source == OURS else released_knowledge(dataset)


# ---------------------------------------------------------------------------------------------
# The authors' released descriptions


def released_url(dataset: str) -> str:
    root = os.environ.get(ROOT_VARIABLE) or DEFAULT_ROOT
    return f"{root.rstrip('/')}/{RELEASED_FILES[dataset].path}"


def expected_digest(dataset: str) -> str:
    """The pinned SHA-256 of a dataset's file, or the one `KDA_RELEASED_SHA256` names for it."""
    text = os.environ.get(DIGEST_VARIABLE, "").strip()
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, digest = item.partition("=")
        digest = digest.strip().lower()
        if name.strip() not in DATASETS or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise KnowledgeError(
                f"{DIGEST_VARIABLE} must read DATASET=<64 hex digits>[,...] with DATASET one of "
                f"{', '.join(DATASETS)}; got {item!r}"
            )
        overrides[name.strip()] = digest
    return overrides.get(dataset, RELEASED_FILES[dataset].sha256)


def fetch_released(dataset: str, progress: bool = False) -> Path:
    """A local copy of the dataset's released CSV whose SHA-256 is the expected one: the cached copy, else a fresh
    download (a copy with another digest is deleted, never read)."""
    check_choice(dataset, DATASETS, "dataset")
    digest = expected_digest(dataset)
    path = cache_dir() / "knowledge" / f"{dataset}-{digest[:16]}.csv"  # one file per digest: mirrors never mix
    if path.is_file() and sha256_of(path) == digest:
        return path
    url = released_url(dataset)
    hint = (
        f"without network, use `knowledge` {OURS} (the project's own descriptions) or a knowledge file, or place "
        f"the file (SHA-256 {digest}) at {path}"
    )
    try:
        download(url, path, progress, hint)
    except DownloadError as e:
        raise KnowledgeError(f"cannot fetch the released {dataset} descriptions: {e}") from e
    actual = sha256_of(path)
    if actual != digest:
        path.unlink()
        pinned = digest == RELEASED_FILES[dataset].sha256
        raise KnowledgeError(
            f"{url} has SHA-256 {actual}, expected {digest} "
            + (f"(the file at commit {COMMIT[:12]})" if pinned else f"(named in {DIGEST_VARIABLE})")
            + f"; refused. A mirror of another file must name its digest: {DIGEST_VARIABLE}={dataset}=<hex>"
        )
    return path


def released_knowledge(dataset: str, progress: bool = False) -> Knowledge:
    """The authors' descriptions of every class of `dataset`, keyed by the benchmark's class ids."""
    path = fetch_released(dataset, progress)
    rows = read_released_csv(path)
    classes = builtin_classes(dataset)
    bound = match_classes([(c.id, c.name) for c in classes], [row[0] for row in rows])
    unbound = [c.id for c, row in zip(classes, bound, strict=True) if row is None]
    if unbound:
        raise KnowledgeError(
            f"the released {dataset} descriptions lack {len(unbound)} of the benchmark's {len(classes)} classes: "
            + ", ".join(unbound[:12])
            + (" ..." if len(unbound) > 12 else "")
        )
    entries = {}
    for c, row in zip(classes, bound, strict=True):
        name, *texts = rows[row]
        entries[c.id] = ClassKnowledge(name, tuple(Description(a, t) for a, t in zip(ASPECTS, texts, strict=True)))
    provenance = {
        "author": "the KDA authors (released with the paper)",
        "method": "the authors' LLM descriptions, one per question (introduction, visual, auditory), as released",
        "source": released_url(dataset),
        "repository": REPOSITORY,
        "commit": COMMIT,
        "licence": LICENCE,
        "sha256": sha256_of(path),
    }
    return Knowledge(f"{dataset}-GZSL", entries, provenance, source=str(path))


def read_released_csv(path: Path) -> list[list[str]]:
    """The rows (name and three descriptions) of a released CSV, checked."""
    try:
        rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise KnowledgeError(f"{path} is not a readable UTF-8 CSV file ({e})") from e
    if not rows or [h.strip() for h in rows[0]] != HEADER:
        raise KnowledgeError(f"{path}: the header must be {','.join(HEADER)}, got {','.join(rows[0]) if rows else ''}")
    body = []
    for number, row in enumerate(rows[1:], start=1):
        row = [field.strip() for field in row]
        if not any(row):
            continue
        if len(row) != len(HEADER) or not all(row):
            raise KnowledgeError(f"{path} row {number}: expected a name and three non-empty descriptions")
        body.append(row)
    return body
