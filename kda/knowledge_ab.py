"""Knowledge A/B on the benchmark: does an edited description help the test split, not just one clip?

Knowledge does not change a video's fused embedding rho_av, only the class matrix it is compared with. So a
checkpoint that carries the rho_av of its test videos (`TestSplit`) scores any edited knowledge with one
distance matrix and the library's one calibrated-stacking rule (`kda.prediction`, `kda.metrics`): the test
S / U / HM / ZSL under the edited knowledge against the checkpoint's own, at the checkpoint's beta, and which
test videos changed their prediction.

    ab = KnowledgeAB.of_checkpoint(checkpoint)             # the checkpoint's knowledge scored once
    comparison = ab.compare(session.candidates(), session.changed())
    comparison.edited.hm - comparison.checkpoint.hm         # what the edit did to the benchmark's HM
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from kda.benchmark import VideoSet
from kda.checkpoint import Checkpoint, TestSplit
from kda.errors import KdaError
from kda.metrics import GZSLResult, gzsl_metrics, gzsl_predictions
from kda.prediction import Candidates, distances


@dataclass(frozen=True)
class Scored:
    """The test split under one knowledge: its GZSL metrics and each video's predicted class id."""

    candidates: Candidates
    metrics: GZSLResult
    predicted: np.ndarray  # (N,) object: class ids
    distances: np.ndarray  # (N, C) to the candidates, in their order
    labels: np.ndarray  # (N,) int64 index into the candidates


@dataclass(frozen=True)
class ClassResult:
    """One class's GZSL accuracy (percent of its test videos predicted as it; None without test videos)."""

    class_id: str
    name: str
    seen: bool
    edited: bool  # its knowledge differs from the checkpoint's
    videos: int
    checkpoint: float | None  # under the checkpoint's knowledge
    now: float | None  # under the edited knowledge

    @property
    def change(self) -> float:
        return (self.now or 0.0) - (self.checkpoint or 0.0)

    def to_json(self) -> dict:
        return {
            "class_id": self.class_id,
            "name": self.name,
            "seen": self.seen,
            "edited": self.edited,
            "videos": self.videos,
            "checkpoint": self.checkpoint,
            "now": self.now,
        }


@dataclass(frozen=True)
class Move:
    """`videos` test videos of class `truth` that the checkpoint's knowledge predicted as `was` and the
    edited knowledge predicts as `now`."""

    truth: str
    was: str
    now: str
    videos: int

    def to_json(self) -> dict:
        return {"truth": self.truth, "was": self.was, "now": self.now, "videos": self.videos}


@dataclass(frozen=True)
class Comparison:
    checkpoint: GZSLResult  # the test split under the checkpoint's own knowledge
    edited: GZSLResult  # under the edited knowledge, at the same beta
    classes: list[ClassResult]  # edited classes, then every class a moved video belongs to, left or went to
    moves: list[Move]  # most videos first
    videos: int
    split: str

    def table(self, label: str = "edited", moves: int = 10) -> str:
        """The two results as rows of one table, then each listed class's accuracy and the largest moves."""
        lines = [self.checkpoint.table("checkpoint"), self.edited.table(label).splitlines()[1]]
        if self.classes:
            lines.append(f"GZSL accuracy (%) of the {self.videos} test videos per class, checkpoint -> {label}:")
        for c in self.classes:
            marks = ", ".join(["seen" if c.seen else "unseen", *(["edited"] if c.edited else [])])
            before, after = (f"{x:5.1f}" if x is not None else "    -" for x in (c.checkpoint, c.now))
            lines.append(f"  {c.name} ({marks}): {before} -> {after}  ({c.videos} videos)")
        for m in self.moves[:moves]:
            lines.append(f"  {m.videos} video(s) of {m.truth} predicted {m.was} before, {m.now} now")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "split": self.split,
            "videos": self.videos,
            "checkpoint": self.checkpoint.to_dict(),
            "edited": self.edited.to_dict(),
            "classes": [c.to_json() for c in self.classes],
            "moves": [m.to_json() for m in self.moves],
        }


class KnowledgeAB:
    """A test split scored under the checkpoint's knowledge (once) and under any other class matrix."""

    def __init__(self, split: TestSplit, class_ids: Sequence[str], base: Candidates, beta: float):
        self.rho = np.asarray(split.rho_av, dtype=np.float32)  # (N, E)
        self.truth = np.asarray(class_ids, dtype=object)[split.labels]  # (N,) true class ids
        self.urls = list(split.urls)
        self.beta = float(beta)
        self.split = split.split
        self.base = self.score(base)

    @classmethod
    def of_checkpoint(cls, ckpt: Checkpoint, split: TestSplit | None = None, beta: float | None = None):
        """The A/B of a checkpoint on `split` (default: the one it carries) at `beta` (default: its own)."""
        split = split if split is not None else ckpt.test_split
        if split is None:
            raise KdaError(
                "this checkpoint carries no test split (it was saved before checkpoints kept one); retrain it, "
                "or evaluate on the benchmark's features (`root`)"
            )
        return cls(split, ckpt.class_ids, checkpoint_candidates(ckpt), ckpt.beta if beta is None else beta)

    def __len__(self) -> int:
        return len(self.truth)

    def score(self, candidates: Candidates) -> Scored:
        """The split against `candidates` (which must include every class with test videos)."""
        index = {c: i for i, c in enumerate(candidates.class_ids)}
        missing = sorted(set(self.truth) - set(index))
        if missing:
            raise KdaError(f"the knowledge lacks {len(missing)} classes of the test split: {', '.join(missing[:8])}")
        labels = np.array([index[c] for c in self.truth], dtype=np.int64)
        d = distances(self.rho, candidates.class_matrix)  # (N, C)
        seen = np.asarray(candidates.seen, dtype=bool)
        metrics = gzsl_metrics(d, labels, seen, self.beta)
        predicted = np.asarray(candidates.class_ids, dtype=object)[gzsl_predictions(d, seen, self.beta)]
        return Scored(candidates, metrics, predicted, d, labels)

    def compare(self, candidates: Candidates, changed: Sequence[str] = ()) -> Comparison:
        """The checkpoint's knowledge against `candidates` (the edited knowledge); `changed`: its edited classes."""
        now = self.score(candidates)
        moved = np.flatnonzero(self.base.predicted != now.predicted)
        counts = Counter(zip(self.truth[moved], self.base.predicted[moved], now.predicted[moved], strict=True))
        moves = [Move(t, w, n, k) for (t, w, n), k in sorted(counts.items(), key=lambda m: (-m[1], m[0]))]
        involved = list(dict.fromkeys([*changed, *(c for m in moves for c in (m.truth, m.was, m.now))]))
        classes = [self.class_result(c, candidates, now, c in set(changed)) for c in involved]
        classes.sort(key=lambda r: (not r.edited, -abs(r.change), r.name))
        return Comparison(self.base.metrics, now.metrics, classes, moves, len(self), self.split)

    def class_result(self, class_id: str, candidates: Candidates, now: Scored, edited: bool) -> ClassResult:
        i = candidates.class_ids.index(class_id)
        videos = self.truth == class_id
        n = int(videos.sum())

        def accuracy(predicted: np.ndarray) -> float | None:
            return 100 * float(np.mean(predicted[videos] == class_id)) if n else None

        name, seen = candidates.names[i], bool(candidates.seen[i])
        return ClassResult(class_id, name, seen, edited, n, accuracy(self.base.predicted), accuracy(now.predicted))


def checkpoint_candidates(ckpt: Checkpoint) -> Candidates:
    """The checkpoint's classes with its own class matrix."""
    return Candidates(ckpt.class_ids, [c.name for c in ckpt.classes], ckpt.seen_mask, ckpt.class_matrix)


def split_of_videos(videos: VideoSet, rho: np.ndarray, bench_classes: list[str], class_ids: list[str]) -> TestSplit:
    """The split of benchmark `videos` (labels index `bench_classes`) with their rho_av (N, E), labelled by
    `class_ids` (a checkpoint's classes, which must include every video's class)."""
    position = {c: i for i, c in enumerate(class_ids)}
    names = [bench_classes[y] for y in videos.labels]
    outside = sorted(set(names) - set(position))
    if outside:
        raise KdaError(f"test videos of classes the checkpoint does not have: {', '.join(outside[:8])}")
    labels = np.array([position[c] for c in names], dtype=np.int64)
    return TestSplit(np.asarray(rho, dtype=np.float32), labels, list(videos.urls))


def compact(split: TestSplit, class_ids: Sequence[str], base: Candidates, beta: float) -> TestSplit:
    """`split` in float16 when that changes neither a prediction nor a metric under the checkpoint's knowledge
    `base` (so the recorded test metrics stay exact), else in float32."""
    full = replace(split, rho_av=np.asarray(split.rho_av, dtype=np.float32))
    half = replace(split, rho_av=full.rho_av.astype(np.float16))
    a, b = (KnowledgeAB(s, class_ids, base, beta).base for s in (full, half))
    same = a.metrics == b.metrics and np.array_equal(a.predicted, b.predicted)
    return half if same else full
