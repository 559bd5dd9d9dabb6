"""Time the Heatmaps and Embeddings tabs' analysis: t-SNE of a reference-sample-sized set and of
2,000 points (512-d), first call and cached (the budget: 2,000 points under 10 s on 2 cores, cached per
input), PCA, and the heatmaps' cluster order.

    python bench/bench_analysis.py [--small 150] [--large 2000] [--dim 512] [--threads 1] [--compare-default]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from kda import analysis
from kda.analysis import (
    Classes,
    ProjectionCache,
    Query,
    embedding_map,
    embedding_maps,
    margin_heatmap,
    similarity_heatmap,
)


def timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    seconds = time.perf_counter() - start
    print(f"{label:<56} {seconds:8.3f} s")
    return result, seconds


def clustered(n: int, dim: int, classes: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points (n, dim) around `classes` random centres, like per-class averaged video features."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)  # (n,)
    points = rng.normal(size=(classes, dim))[labels] + 0.5 * rng.normal(size=(n, dim))
    return points.astype(np.float32), labels  # float32, as features are stored


def bench_map(n: int, dim: int, method: str) -> None:
    points, labels = clustered(n, dim)
    cache = ProjectionCache()
    _, first = timed(f"{method} of {n:,} points ({dim}-d), first call", embedding_map, points, method, cache=cache)
    _, again = timed(f"{method} of {n:,} points, same input again (cache)", embedding_map, points, method, cache=cache)
    print(f"{'':<56} first / cached = {first / max(again, 1e-9):,.0f}x  (cache hits {cache.hits})")


def bench_all_maps(n: int, method: str) -> None:
    """The Embeddings tab's four maps at once, cls-setting widths: audio 128, visual 4096, knowledge 384."""
    audio, labels = clustered(n, 128, classes=51)
    visual, rho = clustered(n, 4096, classes=51)[0], clustered(n, 384, classes=51)[0]
    knowledge = clustered(51, 384, classes=51)[0]  # (C, E)
    classes = Classes([f"class{i}" for i in range(51)], [f"class {i}" for i in range(51)], np.arange(51) % 4 != 0)
    query = Query(audio[0], visual[0], rho[0])
    cache = ProjectionCache()
    args = (audio, visual, rho, labels, classes, knowledge, classes)
    maps, first = timed(
        f"all four {method} maps, {n:,} samples + 51 classes", embedding_maps, *args, query, method, cache=cache
    )
    _, again = timed(f"all four {method} maps again (cache)", embedding_maps, *args, query, method, cache=cache)
    shown = ", ".join(f"{k} {m.shown}/{m.total}" for k, m in maps.items())
    print(f"{'':<56} first / cached = {first / max(again, 1e-9):,.0f}x  (shown/total: {shown})")


def bench_default_tsne(n: int, dim: int) -> None:
    """scikit-learn's defaults (1,000 iterations, all OpenMP threads), for comparison with our choice."""
    from sklearn.manifold import TSNE

    points, _ = clustered(n, dim)
    timed(f"sklearn TSNE defaults (max_iter=1000), {n:,} points", TSNE(random_state=0).fit_transform, points)


def bench_heatmaps(classes: int) -> None:
    knowledge = np.random.default_rng(0).normal(size=(classes, 384))  # (C, E) like all-MiniLM-L6-v2
    ids = [f"class{i}" for i in range(classes)]
    seen = np.arange(classes) % 4 != 0
    timed(f"similarity heatmap, {classes} classes, cluster order", similarity_heatmap, knowledge, ids, ids, seen)
    timed(
        f"margin heatmap, {classes} classes, cluster order", margin_heatmap, knowledge, ids, ids, seen, alpha=1, m0=0.5
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--small", type=int, default=150, help="points in the reference-sample-sized map")
    parser.add_argument("--large", type=int, default=2000, help="points in the large map")
    parser.add_argument("--dim", type=int, default=512, help="feature width")
    parser.add_argument("--threads", type=int, default=analysis.TSNE_THREADS, help="OpenMP threads for t-SNE")
    parser.add_argument("--compare-default", action="store_true", help="also time sklearn's default t-SNE")
    args = parser.parse_args()

    analysis.TSNE_THREADS = args.threads
    import sklearn.manifold  # noqa: F401  (imported once per process: not part of a map's time)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load}")
    print(
        f"t-SNE settings: method=barnes_hut, max_iter={analysis.TSNE_MAX_ITER}, perplexity={analysis.TSNE_PERPLEXITY:g}"
        f" (clamped to (n-1)/3), init=PCA + seeded jitter, OpenMP threads={analysis.TSNE_THREADS}"
    )
    for n in (args.small, args.large):
        bench_map(n, args.dim, "tsne")
    bench_map(args.large, args.dim, "pca")
    bench_all_maps(args.large, "tsne")
    if args.compare_default:
        bench_default_tsne(args.large, args.dim)
    for classes in (51, 310):
        bench_heatmaps(classes)


if __name__ == "__main__":
    main()
