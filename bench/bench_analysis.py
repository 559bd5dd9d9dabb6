"""Time the Heatmaps and Embeddings tabs' analysis: t-SNE of 500, 2,000 and 5,000 points (512-d), first call
(with its peak memory; against scikit-learn's default t-SNE on the same 500 points, the larger maps against the
size before them) and cached (the budget: 2,000 points under 10 s on 2 cores, cached per input), PCA, the four
maps at once, and the heatmaps' cluster order. t-SNE and PCA figures go to bench/record.py.

    python bench/bench_analysis.py [--sizes 500 2000 5000] [--dim 512] [--threads 1] [--no-default] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from record import at_most, figure, peak_memory, quick  # noqa: E402

from kda import analysis  # noqa: E402
from kda.analysis import (  # noqa: E402
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


TSNE_BUDGET_POINTS, TSNE_BUDGET_S = 2000, 10.0  # README.md "Budgets"


def bench_map(n: int, dim: int, method: str, default: bool = False, reference: tuple = ("", None)) -> float:
    """One map, first call (its peak memory) and cached; returns the first call's seconds. The first call is
    against scikit-learn's default t-SNE when `default`, else against `reference` (what, seconds) if given."""
    points, labels = clustered(n, dim)
    cache = ProjectionCache()
    with peak_memory() as peak:
        _, first = timed(f"{method} of {n:,} points ({dim}-d), first call", embedding_map, points, method, cache=cache)
    _, again = timed(f"{method} of {n:,} points, same input again (cache)", embedding_map, points, method, cache=cache)
    name = "t-SNE" if method == "tsne" else method.upper()
    what, base = (
        ("scikit-learn TSNE defaults (max_iter 1000, all threads)", bench_default_tsne(n, dim))
        if default
        else reference
    )
    budget = at_most(TSNE_BUDGET_S, "s") if method == "tsne" and n == TSNE_BUDGET_POINTS else None
    figure(f"{name} of {n:,} points ({dim}-d), first call", first, "s", baseline=base, baseline_what=what,
           budget=budget, peak_mib=peak.mib)  # fmt: skip
    figure(f"{name} of {n:,} points, cached", again, "s", baseline=first, baseline_what="its first call",
           note=f"cache hits {cache.hits}")  # fmt: skip
    return first


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


def bench_default_tsne(n: int, dim: int) -> float:
    """Seconds of scikit-learn's defaults (1,000 iterations, all OpenMP threads): what our choice is against."""
    from sklearn.manifold import TSNE

    points, _ = clustered(n, dim)
    return timed(f"sklearn TSNE defaults (max_iter=1000), {n:,} points", TSNE(random_state=0).fit_transform, points)[1]


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
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 5000], help="points per t-SNE map")
    parser.add_argument("--dim", type=int, default=512, help="feature width")
    parser.add_argument("--threads", type=int, default=analysis.TSNE_THREADS, help="OpenMP threads for t-SNE")
    parser.add_argument(
        "--default-up-to",
        type=int,
        default=500,
        help="sklearn's default t-SNE (its OpenMP threads crawl on 2 busy cores: 40 s at 500 points) is the "
        "baseline up to this many points; larger maps are against the first call of the size before them",
    )
    parser.add_argument("--quick", action="store_true", help="300 and 1,000 points, no sklearn baseline")
    args = parser.parse_args()
    sizes, default_up_to = ([300, 1000], 0) if quick() else (sorted(args.sizes), args.default_up_to)

    analysis.TSNE_THREADS = args.threads
    import sklearn.manifold  # noqa: F401  (imported once per process: not part of a map's time)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load}")
    print(
        f"t-SNE settings: method=barnes_hut, max_iter={analysis.TSNE_MAX_ITER}, perplexity={analysis.TSNE_PERPLEXITY:g}"
        f" (clamped to (n-1)/3), init=PCA + seeded jitter, OpenMP threads={analysis.TSNE_THREADS}"
    )
    reference = ("", None)
    for n in sizes:
        first = bench_map(n, args.dim, "tsne", default=n <= default_up_to, reference=reference)
        reference = (f"t-SNE of {n:,} points, same run", first)
    bench_map(max(sizes), args.dim, "pca", reference=reference)
    bench_all_maps(min(sizes[-1], TSNE_BUDGET_POINTS), "tsne")
    for classes in (51, 310):
        bench_heatmaps(classes)


if __name__ == "__main__":
    main()
