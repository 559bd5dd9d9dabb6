"""What the Heatmaps and Embeddings tabs show, as numbers: class x class matrices in a cluster order,
and 2-D maps of feature and knowledge points. Numbers in, arrays out; the plots live in `demo/`.

* `similarity_matrix`, `margin_matrix`: cosine of `t_c`, and the adaptive margins `m(y, c)` computed
  by the loss's own `kda.losses.adaptive_margins`.
* `cluster_order`, `heatmap` (and `similarity_heatmap`, `margin_heatmap`): a `Heatmap` of a subset of
  classes in average-linkage leaf order or by name.
* `embedding_map`: t-SNE or PCA of reference points plus query points, subsampled past `max_points`,
  cached by a hash of its inputs; `embedding_maps` assembles the tab's four `EmbeddingMap`s.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import squareform

from kda.errors import KdaError
from kda.losses import adaptive_margins

ORDERS = ("cluster", "name")
CLUSTER_KINDS = ("similarity", "margin", "distance")
METHODS = ("tsne", "pca")
OPTIMAL_ORDERING_MAX = 400  # classes; scipy's optimal leaf ordering takes ~0.05 s for 300, ~2 s for 1,000
TSNE_PERPLEXITY = 30.0  # scikit-learn's default; clamped to (n - 1) / 3 for small sets
TSNE_MAX_ITER = 500  # 250 early-exaggeration steps + 250 more: 2,000 points in a few seconds on 2 cores
# OpenMP threads for t-SNE's gradient. On 2 busy cores two threads spin-wait on each other: 2,000 points
# took 21 s with 2 threads and 4-7 s with 1 (bench/bench_analysis.py); idle, 2.4 s with 2.
TSNE_THREADS = 1
MAX_POINTS = 2000  # reference points drawn before subsampling (the t-SNE budget is for 2,000)


class AnalysisError(KdaError):
    """A bad class subset, order, method or matrix."""


# ---------------------------------------------------------------------------------------------
# Class x class matrices


def similarity_matrix(class_matrix) -> np.ndarray:
    """cos(t_y, t_c) for every pair of classes. class_matrix (C, E) -> (C, C) float64."""
    t = np.asarray(class_matrix, dtype=np.float64)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)  # (C, E) unit rows
    return np.clip(t @ t.T, -1.0, 1.0)


def margin_matrix(class_matrix, alpha: float, m0: float) -> np.ndarray:
    """m(y, c) exactly as training uses it (`kda.losses.adaptive_margins`). (C, E) -> (C, C), zero diagonal."""
    t = torch.as_tensor(np.asarray(class_matrix, dtype=np.float32))
    return adaptive_margins(t, alpha, m0).numpy()


def cluster_order(matrix, kind: str = "similarity") -> np.ndarray:
    """A permutation of the C classes that puts clusters side by side: the leaves of average-linkage
    hierarchical clustering, optimally ordered up to OPTIMAL_ORDERING_MAX classes. Deterministic.

    kind says how to read matrix (C, C) as a distance: "similarity" -> 1 - s; "margin" -> max(m) - m
    (a larger margin means more similar knowledge, so the order is the similarity order); "distance".
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.isfinite(m).all():
        raise AnalysisError(f"cluster_order needs a finite square matrix, got one of shape {m.shape}")
    if kind not in CLUSTER_KINDS:
        raise AnalysisError(f"unknown matrix kind {kind!r}; choose one of {', '.join(CLUSTER_KINDS)}")
    if len(m) <= 2:  # one or two classes look the same in any order
        return np.arange(len(m))
    d = {"similarity": 1.0 - m, "margin": m.max() - m, "distance": m}[kind]
    d = np.clip((d + d.T) / 2, 0.0, None)  # symmetric and non-negative, as linkage requires
    np.fill_diagonal(d, 0.0)
    condensed = squareform(d, checks=False)  # (C * (C - 1) / 2,)
    tree = linkage(condensed, method="average")
    if len(m) <= OPTIMAL_ORDERING_MAX:
        tree = optimal_leaf_ordering(tree, condensed)
    return leaves_list(tree)


@dataclass(frozen=True)
class Heatmap:
    matrix: np.ndarray  # (K, K), rows and columns in the order below
    class_ids: list[str]  # (K,)
    names: list[str]  # (K,)
    seen: np.ndarray  # (K,) bool
    title: str
    value_label: str  # what a cell holds, for the colour bar and hover
    note: str = ""  # what a reader must know besides the title
    applied: np.ndarray | None = None  # margins: (K, K) bool, whether training ever applied the cell's margin


def unknown_classes_message(unknown: list[str], choices: list[str]) -> str:
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, choices, n=3)
        hints.append(f"{name!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
    return f"unknown classes {', '.join(hints)}; choose among the class ids or names of this knowledge"


def select_classes(class_ids: list[str], names: list[str], classes: list[str] | None) -> np.ndarray:
    """Row indices of `classes` (class ids, or names ignoring case), in the order given, duplicates
    dropped. None or empty selects every class."""
    if not classes:
        return np.arange(len(class_ids))
    by_key = {n.casefold(): i for i, n in enumerate(names)} | {c: i for i, c in enumerate(class_ids)}
    unknown = [c for c in classes if c not in by_key and c.casefold() not in by_key]
    if unknown:
        raise AnalysisError(unknown_classes_message(unknown, list(class_ids) + list(names)))
    rows = [by_key[c] if c in by_key else by_key[c.casefold()] for c in classes]
    return np.array(list(dict.fromkeys(rows)), dtype=int)


def heatmap(
    matrix,
    class_ids: list[str],
    names: list[str],
    seen,
    *,
    title: str,
    value_label: str,
    order: str = "cluster",
    classes: list[str] | None = None,
    kind: str = "similarity",
    note: str = "",
) -> Heatmap:
    """The full (C, C) matrix cut to `classes` (see select_classes), then ordered within that subset:
    "cluster" (cluster_order, reading the matrix as `kind`) or "name" (alphabetical)."""
    if order not in ORDERS:
        raise AnalysisError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
    keep = select_classes(class_ids, names, classes)  # (K,)
    sub = np.asarray(matrix)[np.ix_(keep, keep)]  # (K, K)
    if order == "cluster":
        perm = cluster_order(sub, kind)
    else:
        perm = np.array(sorted(range(len(keep)), key=lambda i: names[keep[i]].casefold()), dtype=int)
    rows = keep[perm]
    return Heatmap(
        matrix=sub[np.ix_(perm, perm)],
        class_ids=[class_ids[i] for i in rows],
        names=[names[i] for i in rows],
        seen=np.asarray(seen, dtype=bool)[rows],
        title=title,
        value_label=value_label,
        note=note,
    )


def similarity_heatmap(class_matrix, class_ids, names, seen, *, order="cluster", classes=None) -> Heatmap:
    """class_matrix (C, E) -> Heatmap of cos(t_y, t_c)."""
    title = "Knowledge similarity: cosine of the class embeddings t_c"
    matrix = similarity_matrix(class_matrix)
    label = "cosine similarity"
    return heatmap(matrix, class_ids, names, seen, title=title, value_label=label, order=order, classes=classes)


def margin_heatmap(
    class_matrix, class_ids, names, seen, *, alpha, m0, margin_weight=1.0, order="cluster", classes=None
) -> Heatmap:
    """class_matrix (C, E) -> Heatmap of the adaptive margins m(y, c) the loss adds to non-target logits. Training
    sees only the seen classes, so margins of an unseen row or column were never applied; with `margin_weight`
    0 (the released preset) none was."""
    title = f"Adaptive margin m(y, c) = {alpha:g} * cos(t_y, t_c) + {m0:g}, 0 on the diagonal"
    matrix = margin_matrix(class_matrix, alpha, m0)
    label = "margin (logit units)"
    if margin_weight == 0:
        note = "trained WITHOUT the margin loss (weight 0): no margin here was applied; they show what it would add"
    else:
        note = "rows and columns of unseen classes: margins the loss never applied (training sees seen classes only)"
    hm = heatmap(
        matrix, class_ids, names, seen, title=title, value_label=label, order=order, classes=classes, kind="margin",
        note=note,
    )  # fmt: skip
    applied = np.outer(hm.seen, hm.seen) & (margin_weight != 0)
    return replace(hm, applied=applied)


# ---------------------------------------------------------------------------------------------
# 2-D maps


def subsample(n: int, max_points: int, labels=None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most max_points of n rows, the same for the same arguments. With labels (n,)
    every class keeps about its share: rows are ranked within their class in a seeded random order and
    the rows with the lowest rank fractions are kept."""
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, size=max_points, replace=False))
    labels = np.asarray(labels)
    fraction = np.empty(n)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        fraction[rows] = (np.arange(len(rows)) + 0.5) / len(rows)  # position within its class, in (0, 1)
    return np.sort(np.argsort(fraction, kind="stable")[:max_points])


@dataclass(frozen=True)
class Projection:
    coords: np.ndarray  # (shown + q, 2), read-only: the kept reference rows, then the query rows
    index: np.ndarray  # (shown,) the reference rows kept, ascending
    total: int  # reference rows given

    @property
    def shown(self) -> int:
        return len(self.index)


class ProjectionCache:
    """A small least-recently-used cache of Projections keyed by a hash of the inputs and parameters.
    Shared by the app's threads: lookups hold a lock, a miss is computed outside it."""

    def __init__(self, maxsize: int = 32):
        self.maxsize, self.hits, self.misses = maxsize, 0, 0
        self._items: OrderedDict[str, Projection] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Projection | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._items.move_to_end(key)
            return found

    def put(self, key: str, value: Projection) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0


PROJECTION_CACHE = ProjectionCache()


def input_key(*arrays, **params) -> str:
    """A hash of the arrays' dtype, shape and bytes (None allowed) and of the parameters."""
    digest = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = None if a is None else np.ascontiguousarray(a)
        digest.update(b"None" if a is None else f"{a.dtype}{a.shape}".encode() + a.tobytes())
    digest.update(repr(sorted(params.items())).encode())
    return digest.hexdigest()


def tsne(points: np.ndarray, seed: int, perplexity: float, max_iter: int) -> np.ndarray:
    """(n, D) -> (n, 2) by Barnes-Hut t-SNE, perplexity clamped so that tiny sets work (it must be < n).

    Started like scikit-learn's init="pca" (first axis scaled to std 1e-4), which alone would ignore
    the seed; a seeded jitter of a tenth of that scale lets the seed pick among layouts of the same
    global shape.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(points)
    if n < 2 or np.ptp(points, axis=0).max() == 0:  # nothing to lay out; sklearn would divide by zero
        return np.zeros((n, 2))
    start = pca(points, points[:0])  # (n, 2)
    start = start / start[:, 0].std() * 1e-4 + np.random.default_rng(seed).normal(scale=1e-5, size=start.shape)
    model = TSNE(
        perplexity=min(perplexity, max(1.0, (n - 1) / 3)),
        max_iter=max_iter,
        init=start,
        method="barnes_hut",
        random_state=seed,
    )
    with threadpool_limits(TSNE_THREADS, user_api="openmp"):
        return model.fit_transform(points).astype(np.float64)


def pca(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Fit on reference (n, D), transform reference and query (q, D) -> (n + q, 2). Axes beyond what
    the data can give (one distinct point, one feature) stay 0."""
    from sklearn.decomposition import PCA

    n, dim = reference.shape
    out = np.zeros((n + len(query), 2))
    if n >= 2 and np.ptp(reference, axis=0).max() > 0:
        k = min(2, dim)
        model = PCA(n_components=k, random_state=0).fit(reference)  # randomized SVD on large sets: fixed state
        out[:, :k] = model.transform(np.concatenate([reference, query]))
    return out


def embedding_map(
    points,
    method: str = "tsne",
    seed: int = 0,
    query=None,
    max_points: int | None = MAX_POINTS,
    labels=None,
    *,
    perplexity: float = TSNE_PERPLEXITY,
    max_iter: int = TSNE_MAX_ITER,
    cache: ProjectionCache | None = PROJECTION_CACHE,
) -> Projection:
    """2-D coordinates of reference points (N, D) and query points (q, D) or (D,) in one map.

    Past max_points (None: no cap) the reference rows are subsampled by `subsample`, per class when
    labels (N,) are given; query rows are always kept. t-SNE has no transform, so the query is embedded
    together with the reference points; PCA is fitted on the reference points and transforms the query.
    The same inputs and parameters return the same Projection from the cache.
    """
    if method not in METHODS:
        raise AnalysisError(f"unknown map method {method!r}; choose one of {', '.join(METHODS)}")
    points = np.asarray(points)  # (N, D), hashed in its own dtype (float32 hashes twice as fast)
    if points.ndim != 2 or len(points) == 0:
        raise AnalysisError(f"embedding_map needs a non-empty (N, D) array of points, got shape {points.shape}")
    query = np.zeros((0, points.shape[1]), points.dtype) if query is None else np.asarray(query)
    if query.size % points.shape[1]:
        raise AnalysisError(f"the query has width {query.shape[-1]}, the points {points.shape[1]}: both must match")
    query = query.reshape(-1, points.shape[1])  # (q, D)
    params = dict(method=method, seed=seed, max_points=max_points, perplexity=perplexity, max_iter=max_iter)
    key = input_key(points, query, labels, **params)
    if cache is not None and (found := cache.get(key)) is not None:
        return found
    points, query = points.astype(np.float64), query.astype(np.float64)
    index = subsample(len(points), max_points or len(points), labels, seed)  # (shown,)
    if method == "tsne":
        coords = tsne(np.concatenate([points[index], query]), seed, perplexity, max_iter)
    else:
        coords = pca(points[index], query)
    coords.setflags(write=False)  # a cached result is shared by every caller
    index.setflags(write=False)
    result = Projection(coords=coords, index=index, total=len(points))
    if cache is not None:
        cache.put(key, result)
    return result


class Classes(NamedTuple):
    """A class table: ids, readable names and seen flags, (C,) each."""

    ids: list[str]
    names: list[str]
    seen: np.ndarray


class Query(NamedTuple):
    """The video placed in the maps; a modality left None is left out of its map."""

    audio: np.ndarray | None  # (Da,)
    visual: np.ndarray | None  # (Dv,)
    rho: np.ndarray | None  # (E,) fused rho_av
    name: str = "your video"


CSV_COLUMNS = ("x", "y", "class_id", "class_name", "seen", "kind", "set")


@dataclass(frozen=True)
class EmbeddingMap:
    coords: np.ndarray  # (n, 2)
    class_ids: list[str]  # (n,), "" for the query
    names: list[str]  # (n,)
    seen: np.ndarray  # (n,) bool, False for the query
    kind: list[str]  # (n,) "sample" | "knowledge" | "query"
    title: str  # says the method and, when subsampled, "shown of total"
    method: str  # "tsne" | "pca"
    total: int  # reference points (samples + knowledge) before subsampling; the query is not counted
    shown: int  # reference points drawn
    point_set: str  # "audio" | "visual" | "knowledge" | "fused": the CSV's `set` column

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        columns = (self.coords, self.class_ids, self.names, self.seen, self.kind)
        for (x, y), class_id, name, seen, kind in zip(*columns, strict=True):
            seen = "true" if seen else "false"
            writer.writerow([repr(float(x)), repr(float(y)), class_id, name, seen, kind, self.point_set])
        return out.getvalue()


TITLES = {
    "audio": "Audio features",
    "visual": "Visual features",
    "knowledge": "Class matrix t_c (knowledge embeddings)",
    "fused": "Fused embeddings rho_av and class matrix t_c",
}


def embedding_maps(
    audio,
    visual,
    rho,
    labels,
    sample_classes: Classes,
    knowledge,
    knowledge_classes: Classes,
    query: Query | None = None,
    method: str = "tsne",
    seed: int = 0,
    max_points: int = MAX_POINTS,
    cache: ProjectionCache | None = PROJECTION_CACHE,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, EmbeddingMap]:
    """The Embeddings tab's four maps, keyed by point set:

    * "audio" (N, Da), "visual" (N, Dv): the reference samples, labels (N,) indexing sample_classes;
    * "knowledge": t_c (C, E) alone, one point per row of knowledge_classes;
    * "fused": rho_av (N, E) samples and the t_c knowledge points in one map (the paper's Figure 4).

    The query video joins every map but the knowledge map. Past max_points the same samples (per class)
    are kept in every map, C fewer so that the fused map stays within max_points too. The sample arrays
    may be None (a checkpoint without reference samples); a map left without points is omitted.
    `progress(point_set, done, total)` hears of each map as its projection starts (t-SNE takes seconds).
    """
    labels = np.asarray([] if labels is None else labels, dtype=int)  # (N,)
    knowledge = np.asarray(knowledge)  # (C, E)
    keep = subsample(len(labels), max(max_points - len(knowledge), 1), labels, seed)  # (S,) same in every map
    ids, names, seen = sample_classes
    sample_rows = [(ids[c], names[c], bool(seen[c]), "sample") for c in labels[keep]]
    knowledge_rows = [(c, n, bool(s), "knowledge") for c, n, s in zip(*knowledge_classes, strict=True)]
    query = query or Query(None, None, None)
    sets = {  # point set -> (samples (N, D) | None, knowledge (C, E) | None, query (D,) | None)
        "audio": (audio, None, query.audio),
        "visual": (visual, None, query.visual),
        "knowledge": (None, knowledge, None),
        "fused": (rho, knowledge, query.rho),
    }
    maps = {}
    for done, (point_set, (samples, known, point)) in enumerate(sets.items()):
        if progress:
            progress(point_set, done, len(sets))
        parts, rows, total = [], [], 0  # point blocks, one (class_id, name, seen, kind) per point, count
        if samples is not None and len(keep):
            parts.append(np.asarray(samples)[keep])  # (S, D)
            rows, total = rows + sample_rows, total + len(labels)
        if known is not None and len(known):
            parts.append(known)  # (C, E)
            rows, total = rows + knowledge_rows, total + len(known)
        if not parts:
            continue
        if len({p.shape[1] for p in parts}) > 1:
            widths = " vs ".join(str(p.shape[1]) for p in parts)
            raise AnalysisError(f"{point_set} map: samples and knowledge differ in width ({widths})")
        projection = embedding_map(np.concatenate(parts), method, seed, point, max_points=None, cache=cache)
        if point is not None:
            rows.append(("", query.name, False, "query"))
        maps[point_set] = assemble(point_set, projection.coords, rows, method, total)
    return maps


def assemble(point_set: str, coords: np.ndarray, rows: list[tuple], method: str, total: int) -> EmbeddingMap:
    """An EmbeddingMap from coords (n, 2) and one (class_id, name, seen, kind) row per point."""
    ids, names, seen, kind = (list(column) for column in zip(*rows, strict=True))
    shown = sum(k != "query" for k in kind)
    count = f"{shown:,} points" if shown == total else f"{shown:,} of {total:,} points, subsampled per class"
    return EmbeddingMap(
        coords=coords,
        class_ids=ids,
        names=names,
        seen=np.array(seen, dtype=bool),
        kind=kind,
        title=f"{TITLES[point_set]}, {'t-SNE' if method == 'tsne' else 'PCA'} ({count})",
        method=method,
        total=total,
        shown=shown,
        point_set=point_set,
    )
