"""The AVCA audio-visual GZSL benchmarks (VGGSound-, UCF-, ActivityNet-GZSL): layout, reader, writer.

Layout of one dataset root (as in the public `avgzsl_benchmark_datasets/<DATASET>/` download):

    class-split/all_class.txt                      one class name per line
    class-split/<prefix>_w2v_class_names.csv       original,manual[,category]
    class-split/<main|cls>_split/<split>.txt       class names of each split
    class-split/<main|cls>_split/<split>.csv       filename,label,label_code
    features/<main|cls>_features/<audio|video>/<folder>/<ClassName>.h5   datasets `data` (N, D), `video_urls`

Features are stored for the five folders of `FEATURE_FOLDERS`; stage 2 trains on all of stage 1.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import h5py
import numpy as np

from kda.errors import KdaError
from kda.names import class_key
from kda.settings import SETTINGS

DATASETS = {"UCF": "ucf", "ActivityNet": "activitynet", "VGGSound": "vggsound"}  # name -> file prefix
SPLITS = (
    "stage_1_train",
    "stage_1_val_seen",
    "stage_1_val_unseen",
    "stage_2_train",
    "stage_2_test_seen",
    "stage_2_test_unseen",
)
FEATURE_FOLDERS = (
    "stage_1_train",
    "stage_1_val_seen",
    "stage_1_val_unseen",
    "stage_2_test_seen",
    "stage_2_test_unseen",
)
# Feature folders each class role has videos in ('train': seen in both stages; 'val_unseen': unseen in
# stage 1, seen in stage 2; 'test_unseen': only met in the stage-2 test).
ROLE_FOLDERS = {
    "train": ("stage_1_train", "stage_1_val_seen", "stage_2_test_seen"),
    "val_unseen": ("stage_1_val_unseen", "stage_2_test_seen"),
    "test_unseen": ("stage_2_test_unseen",),
}
MODALITIES = ("audio", "video")
EXTRACTION_MANIFEST = "extraction.json"  # written by `kda extract` into the roots it makes
SYNTHETIC_MANIFEST = "synthetic.json"  # written by `kda synth`


class BenchmarkError(KdaError, ValueError):
    """The benchmark files are missing, malformed, or do not fit what was asked."""


def check_choice(value: str, choices, what: str) -> str:
    if value not in choices:
        raise BenchmarkError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value


def dataset_prefix(dataset: str) -> str:
    """File prefix of a dataset's readable-name CSV: a built-in benchmark's own, or a user's dataset name
    (`kda extract --dataset NAME`) lower-cased."""
    if dataset in DATASETS:
        return DATASETS[dataset]
    builtin = {name.casefold(): name for name in DATASETS}.get(dataset.casefold())
    if builtin or not dataset or dataset.startswith(".") or any(c in dataset for c in "/\\"):
        hint = f"did you mean {builtin}?" if builtin else f"use a plain name, or one of {', '.join(DATASETS)}"
        raise BenchmarkError(f"dataset name {dataset!r}: {hint}")
    return dataset.lower()


def check_dataset(root: Path, dataset: str) -> str:
    """The readable-name prefix of `dataset` in `root`: a built-in benchmark, or a user's dataset whose
    readable-name CSV (written by `kda extract --dataset NAME`) is in the root."""
    prefix = dataset_prefix(dataset)
    if dataset not in DATASETS and not (root / "class-split" / f"{prefix}_w2v_class_names.csv").exists():
        raise BenchmarkError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}, or the `dataset` name "
            f"`kda extract` wrote {root} with"
        )
    return prefix


@dataclass(frozen=True)
class ClassInfo:
    """One class of a benchmark as shipped with kda: its id, readable name and role per setting.

    role: 'train' (stage-1 seen), 'val_unseen' (stage-1 unseen, stage-2 seen), 'test_unseen', 'unused'.
    """

    id: str
    name: str
    roles: dict[str, str]


def builtin_classes(dataset: str) -> list[ClassInfo]:
    """The classes of a benchmark with their split roles (facts derived from the public class splits)."""
    check_choice(dataset, DATASETS, "dataset")
    text = resources.files("kda").joinpath(f"split_roles/{DATASETS[dataset]}.json").read_text()
    rows = json.loads(text)["classes"]
    return [ClassInfo(r["id"], r["name"], {"cls": r["cls"], "main": r["main"]}) for r in rows]


def split_lists_from_roles(classes: list[ClassInfo], setting: str) -> dict[str, list[str]]:
    """The six split class lists implied by per-class roles."""
    role = {c.id: c.roles[setting] for c in classes}
    train = sorted(c for c, r in role.items() if r == "train")
    val_unseen = sorted(c for c, r in role.items() if r == "val_unseen")
    test_unseen = sorted(c for c, r in role.items() if r == "test_unseen")
    stage_2 = sorted(train + val_unseen)
    return {
        "stage_1_train": train,
        "stage_1_val_seen": train,
        "stage_1_val_unseen": val_unseen,
        "stage_2_train": stage_2,
        "stage_2_test_seen": stage_2,
        "stage_2_test_unseen": test_unseen,
    }


@dataclass
class VideoSet:
    """Features of a set of videos. labels index `Benchmark.classes`."""

    audio: np.ndarray  # (N, Da) float32
    visual: np.ndarray  # (N, Dv) float32
    labels: np.ndarray  # (N,) int64
    urls: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Stage:
    """One stage of the two-stage protocol: what to train on and what to evaluate on."""

    train: VideoSet
    evaluation: VideoSet
    seen: list[int]  # class indices (into Benchmark.classes) seen in training
    unseen: list[int]  # class indices only met at evaluation


@dataclass
class Benchmark:
    root: Path
    dataset: str
    setting: str
    classes: list[str]  # classes of any split, sorted, spelled as in all_class.txt
    all_classes: list[str]  # every class of all_class.txt (some benchmarks list classes no split uses)
    readable: dict[str, str]  # class -> readable name
    splits: dict[str, list[str]]  # split -> class names (canonical spelling)

    @property
    def dims(self) -> tuple[int, int]:
        """(audio, visual) feature dims read from the first feature file."""
        folder = self.features_dir
        out = []
        for modality in MODALITIES:
            first = next(iter(sorted((folder / modality / "stage_1_train").glob("*.h5"))), None)
            if first is None:
                raise BenchmarkError(f"no feature files in {folder / modality / 'stage_1_train'}")
            with h5py.File(first, "r") as f:
                out.append(int(f["data"].shape[1]))
        return out[0], out[1]

    @property
    def features_dir(self) -> Path:
        return self.root / "features" / f"{self.setting}_features"

    def index(self, names: list[str]) -> list[int]:
        position = {c: i for i, c in enumerate(self.classes)}
        return [position[n] for n in names]

    def stage(self, number: int) -> Stage:
        """Stage 1: train on stage_1_train, evaluate on validation. Stage 2: train on all of stage 1,
        evaluate on test."""
        if number == 1:
            train = self.read_folders(["stage_1_train"])
            evaluation = self.read_folders(["stage_1_val_seen", "stage_1_val_unseen"])
            seen, unseen = self.splits["stage_1_train"], self.splits["stage_1_val_unseen"]
        elif number == 2:
            train = self.read_folders(["stage_1_train", "stage_1_val_seen", "stage_1_val_unseen"])
            evaluation = self.read_folders(["stage_2_test_seen", "stage_2_test_unseen"])
            seen, unseen = self.splits["stage_2_train"], self.splits["stage_2_test_unseen"]
        else:
            raise BenchmarkError(f"stage must be 1 or 2, not {number}")
        return Stage(train, evaluation, self.index(seen), self.index(unseen))

    def read_folders(self, folders: list[str]) -> VideoSet:
        parts = [self.read_folder(folder) for folder in folders]
        return VideoSet(
            np.concatenate([p.audio for p in parts]),
            np.concatenate([p.visual for p in parts]),
            np.concatenate([p.labels for p in parts]),
            [u for p in parts for u in p.urls],
        )

    def read_folder(self, folder: str) -> VideoSet:
        """All class files of one feature folder; audio and video rows are matched by URL."""
        by_key = {class_key(c): i for i, c in enumerate(self.classes)}
        audio, visual, labels, urls = [], [], [], []
        audio_dir = self.features_dir / "audio" / folder
        video_dir = self.features_dir / "video" / folder
        for directory in (audio_dir, video_dir):
            if not directory.is_dir():
                raise BenchmarkError(f"missing feature folder {directory}")
        for path in sorted(audio_dir.glob("*.h5")):
            label = by_key.get(class_key(path.stem))
            if label is None:
                raise BenchmarkError(f"feature file {path} names a class that is in no class split")
            video_path = video_dir / path.name
            if not video_path.exists():
                raise BenchmarkError(f"audio features {path} have no video features at {video_path}")
            a, a_urls = read_feature_file(path)
            v, v_urls = read_feature_file(video_path)
            if a_urls != v_urls:
                v = align_by_url(v, v_urls, a_urls, video_path)
            audio.append(a)
            visual.append(v)
            labels.append(np.full(len(a), label, dtype=np.int64))
            urls.extend(a_urls)
        if not audio:
            raise BenchmarkError(f"no feature files in {audio_dir}")
        return VideoSet(np.concatenate(audio), np.concatenate(visual), np.concatenate(labels), urls)


def align_by_url(data: np.ndarray, urls: list[str], wanted: list[str], path: Path) -> np.ndarray:
    position = {u: i for i, u in enumerate(urls)}
    missing = [u for u in wanted if u not in position]
    if missing:
        raise BenchmarkError(f"{path} lacks {len(missing)} videos present in audio, e.g. {missing[0]}")
    return data[[position[u] for u in wanted]]


def read_feature_file(path: Path) -> tuple[np.ndarray, list[str]]:
    try:
        with h5py.File(path, "r") as f:
            data = np.asarray(f["data"], dtype=np.float32)
            urls = [u.decode() if isinstance(u, bytes) else str(u) for u in f["video_urls"]]
    except (OSError, KeyError) as e:
        raise BenchmarkError(f"cannot read {path}: expected an HDF5 file with 'data' and 'video_urls' ({e})") from e
    if data.ndim != 2 or len(data) != len(urls):
        raise BenchmarkError(f"{path}: 'data' must be (N, D) with one URL per row, got {data.shape}, {len(urls)} URLs")
    return data, urls


def read_class_list(path: Path) -> list[str]:
    if not path.exists():
        raise BenchmarkError(f"missing class list {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_readable_names(path: Path) -> dict[str, str]:
    """original -> readable names; absent file means the names are already readable."""
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        return {row["original"]: row["manual"] for row in csv.DictReader(f)}


def load_benchmark(root: str | Path, dataset: str, setting: str) -> Benchmark:
    """Read the class splits of one dataset root; features are read per stage (`Benchmark.stage`)."""
    check_choice(setting, SETTINGS, "setting")
    root = Path(root)
    if not (root / "class-split").is_dir():
        hint = ""
        if (root / dataset / "class-split").is_dir():
            hint = f" (did you mean {root / dataset}?)"
        raise BenchmarkError(f"{root} is not an AVCA dataset root: no class-split/ folder{hint}")
    prefix = check_dataset(root, dataset)
    classes = sorted(read_class_list(root / "class-split" / "all_class.txt"))
    canonical = {class_key(c): c for c in classes}
    splits = {}
    for split in SPLITS:
        names = read_class_list(root / "class-split" / f"{setting}_split" / f"{split}.txt")
        unknown = [n for n in names if class_key(n) not in canonical]
        if unknown:
            raise BenchmarkError(f"{split}.txt names classes missing from all_class.txt: {', '.join(unknown[:5])}")
        splits[split] = sorted(canonical[class_key(n)] for n in names)
    readable = read_readable_names(root / "class-split" / f"{prefix}_w2v_class_names.csv")
    readable = {c: readable.get(c, c) for c in classes}
    used = sorted({c for names in splits.values() for c in names})
    return Benchmark(root, dataset, setting, used, classes, readable, splits)


def feature_source(root: Path) -> dict:
    """Where a root's features came from, for checkpoint provenance. `weights` tells the app which
    extractor weights make matching features: 'pretrained' (the public benchmark features, or `kda
    extract` with real weights), 'offline' (seeded random backbones), or 'none' (synthetic features)."""
    for name, source in ((EXTRACTION_MANIFEST, "kda extract"), (SYNTHETIC_MANIFEST, "synthetic")):
        path = Path(root) / name
        if path.is_file():
            manifest = json.loads(path.read_text())
            if source == "synthetic":
                return {"source": source, "weights": "none", **manifest}
            weights = "offline" if manifest.get("offline") else "pretrained"
            keep = ("audio_backbone", "visual_backbone", "caps")
            return {"source": source, "weights": weights, **{k: manifest[k] for k in keep if k in manifest}}
    return {"source": "benchmark features", "weights": "pretrained"}


# ---------------------------------------------------------------------------------------------
# Writer (synthetic benchmarks, `kda extract`)


def write_class_split(
    root: Path, dataset: str, setting: str, classes: list[str], readable: dict[str, str], splits: dict[str, list[str]]
) -> None:
    """Write all_class.txt, the readable-name CSV and the split .txt files."""
    split_dir = root / "class-split" / f"{setting}_split"
    split_dir.mkdir(parents=True, exist_ok=True)
    (root / "class-split" / "all_class.txt").write_text("".join(f"{c}\n" for c in sorted(classes)))
    with (root / "class-split" / f"{dataset_prefix(dataset)}_w2v_class_names.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["original", "manual"])
        writer.writerows([c, readable.get(c, c)] for c in sorted(classes))
    for split in SPLITS:
        (split_dir / f"{split}.txt").write_text("".join(f"{c}\n" for c in splits[split]))


def write_split_csv(root: Path, setting: str, split: str, rows: list[tuple[str, str]], classes: list[str]) -> None:
    """Write `<split>.csv` (filename,label,label_code); label_code indexes the sorted class list."""
    code = {c: i for i, c in enumerate(sorted(classes))}
    path = root / "class-split" / f"{setting}_split" / f"{split}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "label_code"])
        writer.writerows([name, label, code[label]] for name, label in rows)


def write_feature_file(
    root: Path, setting: str, modality: str, folder: str, class_name: str, data: np.ndarray, urls: list[str]
) -> Path:
    """Write one class's features of one modality and folder."""
    check_choice(modality, MODALITIES, "modality")
    path = root / "features" / f"{setting}_features" / modality / folder / f"{class_name}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.asarray(data, dtype=np.float32))
        f.create_dataset(
            "video_urls", data=np.array([u.encode() for u in urls], dtype=object), dtype=h5py.string_dtype()
        )
    return path
