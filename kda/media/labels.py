"""A user's labelled videos and their place in the AVCA two-stage protocol.

The labels CSV has columns `filename,label[,split]`: the video's path relative to the videos folder,
its class name, and optionally the AVCA feature folder it belongs to (one of `FEATURE_FOLDERS`).

Roles, as in the public splits: a 'train' class is seen in both stages, a 'val_unseen' class is unseen
in stage 1 (validation) and seen in stage 2, a 'test_unseen' class is only met in the stage-2 test.
Each feature folder holds videos of these roles only:

    stage_1_train, stage_1_val_seen   'train'
    stage_1_val_unseen                'val_unseen'
    stage_2_test_seen                 'train' and 'val_unseen' (videos not used in stage 1)
    stage_2_test_unseen               'test_unseen'

Without a `split` column, a default assignment is made, deterministic in the class and file names
(each ordered by its SHA-256, so neither alphabetical order nor the CSV's order matters):
classes: 20 % 'val_unseen', 20 % 'test_unseen' (at least one each), the rest 'train';
videos of a 'train' class: 20 % stage_1_val_seen (at least one when the class has three or more),
20 % stage_2_test_seen (at least one when it has four or more), the rest stage_1_train, so that small
classes keep two videos to train on; videos of a 'val_unseen' class: 30 % stage_2_test_seen (at least
one when it has two or more), the rest stage_1_val_unseen; 'test_unseen' videos all go to
stage_2_test_unseen.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from kda.benchmark import FEATURE_FOLDERS, ROLE_FOLDERS, SPLITS, ClassInfo, split_lists_from_roles
from kda.errors import KdaError

UNSEEN_CLASS_SHARE = 0.2  # of classes, for each of 'val_unseen' and 'test_unseen'
VAL_SEEN_SHARE = 0.2  # of a 'train' class's videos
TEST_SEEN_SHARE = 0.2  # of a 'train' class's videos
VAL_UNSEEN_TEST_SHARE = 0.3  # of a 'val_unseen' class's videos, kept for the stage-2 seen test
STAGE_1_FOLDERS = ("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen")


class LabelsError(KdaError):
    """The labels CSV is malformed or its split cannot make a valid two-stage benchmark."""


@dataclass(frozen=True)
class LabeledVideo:
    filename: str  # relative to the videos folder, as written in the CSV
    label: str  # class name
    folder: str | None = None  # AVCA feature folder from the `split` column


@dataclass
class Assignment:
    roles: dict[str, str]  # class -> 'train' | 'val_unseen' | 'test_unseen'
    folders: dict[str, str]  # filename -> feature folder

    def split_lists(self, setting: str) -> dict[str, list[str]]:
        """The six split class lists (the `<split>.txt` files)."""
        infos = [ClassInfo(c, c, {setting: role}) for c, role in self.roles.items()]
        return split_lists_from_roles(infos, setting)

    def split_rows(self, videos: list[LabeledVideo]) -> dict[str, list[tuple[str, str]]]:
        """(filename, label) rows of each split CSV; stage_2_train holds all of stage 1."""
        rows = {split: [] for split in SPLITS}
        for v in videos:
            folder = self.folders[v.filename]
            rows[folder].append((v.filename, v.label))
            if folder in STAGE_1_FOLDERS:
                rows["stage_2_train"].append((v.filename, v.label))
        return rows


def read_labels(path: str | Path) -> list[LabeledVideo]:
    """Rows of a `filename,label[,split]` CSV, checked (row numbers count the header as row 1)."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels file {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "filename" not in columns or "label" not in columns:
            raise LabelsError(f"{path}: needs a header with columns filename,label[,split]; found {columns}")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    videos, seen = [], set()
    for number, row in enumerate(rows, start=2):
        video = LabeledVideo(row["filename"], row["label"], row.get("split") or None)
        check_row(path, number, video, seen)
        seen.add(video.filename)
        videos.append(video)
    if not videos:
        raise LabelsError(f"{path} lists no videos")
    with_split = sum(v.folder is not None for v in videos)
    if 0 < with_split < len(videos):
        raise LabelsError(f"{path}: give a split for every row or for none ({with_split} of {len(videos)} have one)")
    return videos


def check_row(path: Path, number: int, video: LabeledVideo, seen: set[str]) -> None:
    where = f"{path}, row {number}"
    if not video.filename or not video.label:
        raise LabelsError(f"{where}: filename and label must not be empty")
    if video.filename in seen:
        raise LabelsError(f"{where}: {video.filename!r} is listed twice")
    if any(c in video.label for c in "/\\") or video.label.startswith("."):
        raise LabelsError(
            f"{where}: class name {video.label!r} is used as a file name; drop '/', '\\' and a leading '.'"
        )
    if video.folder is not None and video.folder not in FEATURE_FOLDERS:
        raise LabelsError(f"{where}: split {video.folder!r} is not one of {', '.join(FEATURE_FOLDERS)}")


def stable_order(names) -> list[str]:
    """Names ordered by their SHA-256: deterministic, independent of spelling order and CSV order."""
    return sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())


def assign(videos: list[LabeledVideo]) -> Assignment:
    """The split given in the CSV (checked), or the default one (module docstring)."""
    given = videos[0].folder is not None  # all rows have a split or none do (read_labels checks)
    assignment = given_assignment(videos) if given else default_assignment(videos)
    check_folders_filled(assignment)
    return assignment


def given_assignment(videos: list[LabeledVideo]) -> Assignment:
    folders_of: dict[str, set[str]] = {}
    for v in videos:
        folders_of.setdefault(v.label, set()).add(v.folder)
    roles = {label: role_of(label, folders) for label, folders in folders_of.items()}
    return Assignment(roles, {v.filename: v.folder for v in videos})


def role_of(label: str, folders: set[str]) -> str:
    """The one role whose folders contain all of a class's folders."""
    if folders <= set(ROLE_FOLDERS["train"]) and folders & {"stage_1_train", "stage_1_val_seen"}:
        return "train"
    if folders <= set(ROLE_FOLDERS["val_unseen"]) and "stage_1_val_unseen" in folders:
        return "val_unseen"
    if folders == {"stage_2_test_unseen"}:
        return "test_unseen"
    raise LabelsError(
        f"class {label!r} has videos in {', '.join(sorted(folders))}: a class is either seen in stage 1 "
        "(stage_1_train/stage_1_val_seen, plus stage_2_test_seen), unseen in stage 1 (stage_1_val_unseen, plus "
        "stage_2_test_seen) or unseen in stage 2 (stage_2_test_unseen only)"
    )


def default_assignment(videos: list[LabeledVideo]) -> Assignment:
    by_class: dict[str, list[str]] = {}
    for v in videos:
        by_class.setdefault(v.label, []).append(v.filename)
    classes = stable_order(by_class)
    if len(classes) < 3:
        raise LabelsError(
            f"the default split needs at least 3 classes (seen, unseen in validation, unseen in test); "
            f"the labels have {len(classes)}. Add classes or give a split column"
        )
    n_unseen = max(1, round(UNSEEN_CLASS_SHARE * len(classes)))
    roles = {c: "val_unseen" for c in classes[:n_unseen]}
    roles |= {c: "test_unseen" for c in classes[n_unseen : 2 * n_unseen]}
    roles |= {c: "train" for c in classes[2 * n_unseen :]}
    folders = {}
    for label, files in by_class.items():
        folders |= spread(stable_order(files), roles[label])
    return Assignment(roles, folders)


def spread(files: list[str], role: str) -> dict[str, str]:
    """Folders for one class's videos (in stable order) by the default shares."""
    n = len(files)
    if role == "test_unseen":
        return {f: "stage_2_test_unseen" for f in files}
    if role == "val_unseen":
        k = max(1, round(VAL_UNSEEN_TEST_SHARE * n)) if n >= 2 else 0
        return {f: "stage_2_test_seen" if i < k else "stage_1_val_unseen" for i, f in enumerate(files)}
    k_val = max(1, round(VAL_SEEN_SHARE * n)) if n >= 3 else 0
    k_test = max(1, round(TEST_SEEN_SHARE * n)) if n >= 4 else 0
    out = {}
    for i, f in enumerate(files):
        out[f] = "stage_1_val_seen" if i < k_val else "stage_2_test_seen" if i < k_val + k_test else "stage_1_train"
    return out


def check_folders_filled(assignment: Assignment, lost: set[str] = frozenset()) -> None:
    """Both stages need every feature folder non-empty; `lost` are files that could not be extracted."""
    counts = {folder: 0 for folder in FEATURE_FOLDERS}
    for filename, folder in assignment.folders.items():
        if filename not in lost:
            counts[folder] += 1
    empty = [folder for folder, n in counts.items() if n == 0]
    if empty:
        raise LabelsError(
            f"no videos for {', '.join(empty)}: the two-stage protocol needs videos in every feature folder "
            f"({', '.join(f'{k}: {v}' for k, v in counts.items())}). Add videos (three or more per seen class) "
            "or give a split column"
        )
