"""`kda reproduce`: from the public AVCA feature archive to a results table and a checkpoint, in one call.

    archive  avgzsl_benchmark_datasets.zip (linked from the AVCA-GZSL README), downloaded with resume and a
             progress bar, or a local file; its SHA-256 is recorded at the first download and enforced from then
             on (no digest is published), as for the C3D weights
    unpack   only the chosen dataset's class splits and the chosen setting's audio/video features
    train    the knowledge (ours: assets/knowledge/<dataset>.json; released: the authors' descriptions, fetched
             and checked by kda.knowledge.sources; or both) encoded with the paper's CLIP text encoder, the
             `paper` preset (and `released` with also_released), evaluated on test
    write    OUT/results.json, OUT/results.md (the runs beside the published AVCA, TCaF and ClipClap numbers),
             OUT/<preset>/ checkpoints that `python app.py --checkpoint OUT/paper` loads

Layout of OUT: `data/<DATASET>/` (the unpacked root), one checkpoint per run (`paper/`, `released/` on our
knowledge; `paper-released-knowledge/`, ... on the authors'), `results.json`, `results.md`.
"""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from kda.benchmark import DATASETS, check_choice, load_benchmark
from kda.errors import KdaError
from kda.files import CHUNK_BYTES, cache_dir, check_space, disk_error, download, sha256_of
from kda.knowledge.sources import OURS, SOURCES

ARCHIVE_NAME = "avgzsl_benchmark_datasets.zip"
# The Google Drive file the AVCA-GZSL README links ("Downloading our features"), as a direct download.
ARCHIVE_URL = (
    "https://drive.usercontent.google.com/download?id=1NzpSVL-2nXRFH6pvHNOZeRhu_jfDL0ZE&export=download&confirm=t"
)
UNPACKED_MARKER = ".kda-unpacked.json"

# Published test results on the same benchmarks, (HM, ZSL) in percent (facts from docs/METHOD.md):
# method -> setting -> dataset. ClipClap-GZSL used CLIP + CLAP features on the cls splits.
PUBLISHED = {
    "AVCA": {
        "main": {"VGGSound": (6.31, 6.00), "UCF": (27.15, 20.01), "ActivityNet": (12.13, 9.13)},
        "cls": {"VGGSound": (8.31, 6.91), "UCF": (41.34, 37.72), "ActivityNet": (9.92, 7.58)},
    },
    "TCaF": {"cls": {"VGGSound": (8.77, 7.41), "UCF": (50.78, 44.64), "ActivityNet": (12.20, 7.96)}},
    "ClipClap-GZSL": {"cls": {"VGGSound": (16.18, 11.53), "UCF": (55.97, 46.96), "ActivityNet": (27.93, 22.76)}},
}
PUBLISHED_FEATURES = {"TCaF": "cls, temporal", "ClipClap-GZSL": "CLIP + CLAP"}  # AVCA: the setting's own


BOTH = "both"  # --knowledge both: every preset on our knowledge and on the authors'
KNOWLEDGE_LABELS = {"ours": "ours (assets/knowledge)", "released": "the authors' (released CSV)"}


class ReproduceError(KdaError):
    """The archive cannot be had, is not the recorded one, lacks the dataset, or does not fit on disk."""


class ChecksumMismatchError(ReproduceError):
    pass


class ArchiveError(ReproduceError):
    pass


def published(dataset: str, setting: str) -> list[dict]:
    """The published rows for one dataset and setting: [{"method", "features", "hm", "zsl"}]."""
    rows = []
    for method, by_setting in PUBLISHED.items():
        if dataset in by_setting.get(setting, {}):
            hm, zsl = by_setting[setting][dataset]
            features = PUBLISHED_FEATURES.get(method, setting)
            rows.append({"method": method, "features": features, "hm": hm, "zsl": zsl})
    return rows


# ---------------------------------------------------------------------------------------------
# Download and verification


def archive_dir() -> Path:
    return cache_dir() / "benchmarks"


def record_path() -> Path:
    """Where the archive's SHA-256 seen first is kept (trust on first use, enforced from then on)."""
    return archive_dir() / f"{ARCHIVE_NAME}.sha256"


def verify(path: Path) -> str:
    """Check the archive against the recorded digest, or record it when none is; returns the digest."""
    digest = sha256_of(path)
    record = record_path()
    if not record.is_file():
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(digest + "\n")
        return digest
    expected = record.read_text().strip()
    if digest != expected:
        raise ChecksumMismatchError(
            f"{path} has SHA-256 {digest}, but the archive first downloaded had {expected} (recorded in {record}); "
            "the file is damaged or a different one. Download it again, or delete the record if the publisher "
            "really changed the archive"
        )
    return digest


def fetch_archive(source: str | None = None, progress: bool = True) -> Path:
    """A verified local copy of the archive: `source` a local file, or a URL (default: ARCHIVE_URL) downloaded
    into the cache with resume."""
    source = source or ARCHIVE_URL
    if "://" not in source:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"`source` {path} is not a file; give the archive or its URL")
        verify(path)
        return path
    path = archive_dir() / ARCHIVE_NAME
    if not path.is_file():
        download(
            source,
            path,
            progress,
            hint=f"without network, download {ARCHIVE_NAME} elsewhere and pass the file as `source`",
        )
    try:
        verify(path)
    except ChecksumMismatchError:
        path.unlink()  # a bad copy must not be found again
        raise
    return path


# ---------------------------------------------------------------------------------------------
# Unpacking one dataset and setting


def split_folder(name: str) -> str:
    """The benchmark's own README spells the class-split folder `class_split`; kda reads `class-split`."""
    return name.replace("/class_split/", "/class-split/")


def dataset_prefix_in(names: list[str], dataset: str) -> str | None:
    """The member prefix of `dataset`'s root inside the archive ('avgzsl_benchmark_datasets/UCF/'), if any."""
    for name in names:
        normal = split_folder("/" + name)[1:]
        marker = f"{dataset}/class-split/all_class.txt"
        if normal == marker or normal.endswith("/" + marker):
            return name[: len(name) - len("class-split/all_class.txt")]
    return None


def unpack(archive: Path, dataset: str, setting: str, dest: Path) -> Path:
    """Extract the class splits of `dataset` and its `setting` features into `dest/<dataset>`; reuse an earlier
    unpack of the same archive. Returns the dataset root."""
    root = dest / dataset
    digest = record_path().read_text().strip() if record_path().is_file() else ""
    marker = root / UNPACKED_MARKER
    if marker.is_file() and json.loads(marker.read_text()) == {"archive": digest, "setting": setting}:
        return root
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            names = [m.filename for m in members]
            prefix = dataset_prefix_in(names, dataset)
            if prefix is None:
                found = sorted({d for d in DATASETS if dataset_prefix_in(names, d) is not None})
                raise ArchiveError(
                    f"{archive} has no {dataset} dataset (no {dataset}/class-split/all_class.txt); it holds "
                    f"{', '.join(found) or 'none of ' + ', '.join(DATASETS)}"
                )
            wanted = [prefix + "class-split/", prefix + "class_split/"] + [
                f"{prefix}features/{setting}_features/{m}/" for m in ("audio", "video")
            ]
            chosen = [m for m in members if not m.is_dir() and any(m.filename.startswith(w) for w in wanted)]
            if not any("/features/" in m.filename for m in chosen):
                raise ArchiveError(
                    f"{archive} has {dataset} but no {setting} features ({prefix}features/{setting}_features/)"
                )
            root.mkdir(parents=True, exist_ok=True)
            check_space(root, sum(m.file_size for m in chosen), f"unpacking {dataset} {setting}")
            for member in chosen:
                target = root / split_folder("/" + member.filename[len(prefix) :])[1:]
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK_BYTES)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"{archive} is not a zip archive ({e}); delete it and download it again") from e
    except OSError as e:
        raise disk_error(e, root) from e
    marker.write_text(json.dumps({"archive": digest, "setting": setting}))
    return root


# ---------------------------------------------------------------------------------------------
# Training, evaluation, results


@dataclass
class Run:
    preset: str
    knowledge: str  # kda.knowledge.sources: "ours" or "released"
    beta_grid: str
    checkpoint: Path
    test: dict  # GZSLResult.to_dict()
    validation: dict | None
    best_epoch: int


def run_folder(preset: str, knowledge: str) -> str:
    return preset if knowledge == OURS else f"{preset}-{knowledge}-knowledge"


def train_preset(
    root: Path, dataset: str, setting: str, preset_name: str, knowledge: str, out: Path, options: dict
) -> Run:
    """Train and evaluate one preset on one knowledge source; save its checkpoint in out/<run_folder>."""
    from kda.checkpoint import save_checkpoint
    from kda.knowledge.class_matrix import load_class_matrix
    from kda.presets import get_preset
    from kda.train import to_checkpoint, train

    preset = get_preset(preset_name)
    bench = load_benchmark(root, dataset, setting)
    class_matrix = load_class_matrix(knowledge, options["text_encoder"], form=preset.class_matrix_form, dataset=dataset)
    class_matrix = class_matrix.bind(bench.classes, known=bench.all_classes)
    grid = {"beta_grid": options["beta_grid"]} if options["beta_grid"] else {}  # else the preset's own
    cfg = preset.train_config(epochs=options["epochs"], **grid, **options["overrides"])
    model_cfg = preset.model_config(setting, embed_dim=class_matrix.vectors.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the released protocol's test-selection warning is in results.md
        result = train(bench, class_matrix, model_cfg, preset.loss_config(), cfg, progress=options["progress"])
    provenance = {"knowledge": knowledge, "preset": preset.name, "reproduce": options["archive"]}
    ckpt = to_checkpoint(result, bench, class_matrix, preset.loss_config(), cfg, provenance)
    folder = save_checkpoint(ckpt, out / run_folder(preset.name, knowledge))
    validation = None if result.validation is None else result.validation.to_dict()
    return Run(preset.name, knowledge, cfg.beta_grid, folder, result.test.to_dict(), validation, result.best_epoch)


def reproduce(
    dataset: str,
    setting: str,
    out: str | Path,
    *,
    source: str | None = None,
    text_encoder: str | None = None,
    also_released: bool = False,
    knowledge: str = OURS,
    epochs: int = 50,
    beta_grid: str | None = None,
    progress: bool = True,
    log=print,
    train_overrides: dict | None = None,
) -> dict:
    """Download (or take) the archive, unpack one dataset and setting, train and evaluate; write
    OUT/results.json and OUT/results.md and return the results. `beta_grid`: every preset's, or None for each
    preset's own. `knowledge`: "ours", "released" or "both" (every
    preset on each, side by side in the results). `train_overrides` set TrainConfig fields of
    every preset (e.g. a smaller `batches_per_epoch` for a quick check); they are recorded in the results."""
    from kda.knowledge import DEFAULT_TEXT_ENCODER

    check_choice(dataset, DATASETS, "dataset")
    check_choice(setting, ("main", "cls"), "setting")
    check_choice(knowledge, (*SOURCES, BOTH), "knowledge")
    sources = SOURCES if knowledge == BOTH else (knowledge,)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    archive = fetch_archive(source, progress)
    log(f"archive {archive} verified (SHA-256 {record_path().read_text().strip()[:16]}...)")
    root = unpack(archive, dataset, setting, out / "data")
    log(f"unpacked {dataset} {setting} into {root}")
    options = {
        "text_encoder": text_encoder or DEFAULT_TEXT_ENCODER,
        "epochs": epochs,
        "beta_grid": beta_grid,
        "progress": progress,
        "overrides": dict(train_overrides or {}),
        "archive": {"source": source or ARCHIVE_URL, "sha256": record_path().read_text().strip()},
    }
    runs = []
    for preset in ("paper", "released") if also_released else ("paper",):
        for source in sources:
            log(f"training preset {preset!r} on {source} knowledge ({epochs} epochs)")
            runs.append(train_preset(root, dataset, setting, preset, source, out, options))
    results = {
        "dataset": dataset,
        "setting": setting,
        "text_encoder": options["text_encoder"],
        "epochs": epochs,
        "beta_grid": beta_grid,
        "train_overrides": options["overrides"],
        "archive": options["archive"],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": [
            {
                "preset": r.preset,
                "knowledge": r.knowledge,
                "beta_grid": r.beta_grid,
                "checkpoint": str(r.checkpoint),
                "best_epoch": r.best_epoch,
                "test": r.test,
                "validation": r.validation,
            }
            for r in runs
        ],
        "published": published(dataset, setting),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(results_markdown(results))
    return results


def results_markdown(results: dict) -> str:
    """The runs beside the published numbers, as a Markdown table."""
    dataset, setting = results["dataset"], results["setting"]
    given = results["beta_grid"]
    grid_words = f"`{given}`" if given else "the preset's own (`paper`: `gaps`, `released`: `avca`)"
    lines = [
        f"# KDA on {dataset}-GZSL, {setting} features",
        "",
        f"Text encoder `{results['text_encoder']}`, {results['epochs']} stage-1 epochs, beta grid "
        f"{grid_words}. Test-set results in percent (S, U: class-averaged accuracy of seen and unseen "
        "test videos among all classes; HM their harmonic mean; ZSL: unseen videos among unseen classes).",
        "",
        "| run | knowledge | features | S | U | HM | ZSL | beta | selection |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        t = run["test"]
        selection = "validation" if run["validation"] is not None else "TEST set (released code; optimistic)"
        lines.append(
            f"| KDA `{run['preset']}` (this run) | {KNOWLEDGE_LABELS[run['knowledge']]} | {setting} | {t['seen']:.2f} | {t['unseen']:.2f} | {t['hm']:.2f} | "
            f"{t['zsl']:.2f} | {t['beta']:.3g} | {selection} |"
        )
    for row in results["published"]:
        lines.append(
            f"| {row['method']} (published) | - | {row['features']} | - | - | {row['hm']:.2f} | {row['zsl']:.2f} | - | - |"
        )
    lines += [
        "",
        "Checkpoints: " + ", ".join(f"`{r['checkpoint']}`" for r in results["runs"]),
        f"(open one with `python app.py --checkpoint {results['runs'][0]['checkpoint']}`).",
        "",
    ]
    return "\n".join(lines)
