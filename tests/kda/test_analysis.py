import csv
import io
import math

import numpy as np
import pytest
import torch

from kda.analysis import (
    Classes,
    ProjectionCache,
    Query,
    cluster_order,
    embedding_map,
    embedding_maps,
    heatmap,
    margin_heatmap,
    margin_matrix,
    similarity_heatmap,
    similarity_matrix,
    subsample,
)
from kda.errors import KdaError
from kda.losses import adaptive_margins


def two_groups(per_group=4, dim=16, seed=0):
    """Knowledge whose rows alternate between two tight groups: A at even rows, B at odd rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim)) * 3
    rows = [centres[i % 2] + 0.1 * rng.normal(size=dim) for i in range(2 * per_group)]
    return np.array(rows, dtype=np.float32)  # (2 * per_group, dim)


def class_table(c):
    ids = [f"Class{i:02d}" for i in range(c)]
    names = [f"class {chr(ord('z') - i)}" for i in range(c)]  # reverse alphabetical to the ids
    return ids, names, np.arange(c) % 3 != 0


def clustered_points(n_classes=4, per_class=15, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 4
    labels = np.repeat(np.arange(n_classes), per_class)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


# ---------------------------------------------------------------------------------------------
# Matrices and order


def test_similarity_matrix_equals_plain_cosine():
    k = np.random.default_rng(1).normal(size=(5, 7))
    s = similarity_matrix(k)
    for i in range(5):
        for j in range(5):
            dot = sum(a * b for a, b in zip(k[i], k[j], strict=True))
            norms = math.sqrt(sum(a * a for a in k[i])) * math.sqrt(sum(b * b for b in k[j]))
            assert s[i, j] == pytest.approx(dot / norms, abs=1e-12)


def test_margin_matrix_is_the_losses_own():
    k = np.random.default_rng(2).normal(size=(6, 8)).astype(np.float32)
    m = margin_matrix(k, alpha=1.5, m0=0.25)
    assert isinstance(m, np.ndarray) and m.shape == (6, 6)
    np.testing.assert_array_equal(m, adaptive_margins(torch.from_numpy(k), 1.5, 0.25).numpy())
    assert np.all(np.diag(m) == 0)
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_allclose(m[off], (1.5 * similarity_matrix(k) + 0.25)[off], atol=1e-5)


def test_cluster_order_is_a_deterministic_permutation():
    s = similarity_matrix(np.random.default_rng(3).normal(size=(12, 5)))
    order = cluster_order(s)
    assert sorted(order.tolist()) == list(range(12))
    np.testing.assert_array_equal(order, cluster_order(s))


def test_cluster_order_puts_groups_side_by_side():
    order = cluster_order(similarity_matrix(two_groups()))
    groups = [i % 2 for i in order]  # group A at even rows, B at odd rows
    assert groups in ([0] * 4 + [1] * 4, [1] * 4 + [0] * 4)


def test_margin_order_is_the_similarity_order():
    k = two_groups(per_group=5, seed=4)
    np.testing.assert_array_equal(
        cluster_order(margin_matrix(k, 1.0, 0.5), "margin"), cluster_order(similarity_matrix(k))
    )


@pytest.mark.parametrize("c", [1, 2])
def test_cluster_order_of_one_or_two_classes(c):
    assert cluster_order(np.eye(c)).tolist() == list(range(c))


def test_cluster_order_rejects_bad_input():
    with pytest.raises(KdaError, match="square"):
        cluster_order(np.ones((2, 3)))
    with pytest.raises(KdaError, match="similarity, margin, distance"):
        cluster_order(np.eye(3), kind="cosine")


# ---------------------------------------------------------------------------------------------
# Heatmaps


def test_heatmap_subset_then_cluster_order():
    k = two_groups()
    ids, names, seen = class_table(8)
    wanted = ["Class00", "Class01", "Class02", "Class03", "Class04"]  # A, B, A, B, A
    hm = similarity_heatmap(k, ids, names, seen, classes=wanted)
    assert sorted(hm.class_ids) == wanted
    rows = [ids.index(c) for c in hm.class_ids]
    np.testing.assert_allclose(hm.matrix, similarity_matrix(k)[np.ix_(rows, rows)])
    assert hm.names == [names[r] for r in rows] and hm.seen.tolist() == [bool(seen[r]) for r in rows]
    groups = [r % 2 for r in rows]
    assert groups in ([0, 0, 0, 1, 1], [1, 1, 0, 0, 0])
    assert hm.title == "Knowledge similarity: cosine of the class embeddings t_c"
    assert hm.value_label == "cosine similarity"


def test_heatmap_by_name_and_by_class_name():
    ids, names, seen = class_table(5)
    hm = heatmap(np.arange(25.0).reshape(5, 5), ids, names, seen, title="t", value_label="v", order="name")
    assert hm.names == sorted(names)
    assert hm.matrix[0, 0] == 24.0  # "class v" is the last class
    picked = heatmap(np.eye(5), ids, names, seen, title="t", value_label="v", classes=["CLASS Z", "Class01", "class z"])
    assert sorted(picked.class_ids) == ["Class00", "Class01"]  # a name, ignoring case; duplicates dropped


def test_margin_heatmap_holds_the_margins():
    k = two_groups()
    ids, names, seen = class_table(8)
    hm = margin_heatmap(k, ids, names, seen, alpha=1.0, m0=0.5, order="name")
    rows = [ids.index(c) for c in hm.class_ids]
    np.testing.assert_array_equal(hm.matrix, margin_matrix(k, 1.0, 0.5)[np.ix_(rows, rows)])
    assert hm.title == "Adaptive margin m(y, c) = 1 * cos(t_y, t_c) + 0.5, 0 on the diagonal"  # its alpha and m0


def test_unknown_classes_are_named_with_close_matches():
    ids, names, seen = class_table(4)
    with pytest.raises(KdaError) as error:
        similarity_heatmap(two_groups(2), ids, names, seen, classes=["Class01", "Clas02", "Volleyball"])
    message = str(error.value)
    assert message.startswith("unknown classes 'Clas02' (did you mean 'Class02'")  # Class01 is known
    assert "'Volleyball'; choose among" in message
    with pytest.raises(KdaError, match="cluster, name"):
        similarity_heatmap(two_groups(2), ids, names, seen, order="size")


# ---------------------------------------------------------------------------------------------
# 2-D maps


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_map_has_a_row_per_point_and_query_and_repeats_for_a_seed(method):
    points, labels = clustered_points()
    query = points[:2] + 0.01  # (2, 32)
    first = embedding_map(points, method, seed=0, query=query, cache=None)
    assert first.coords.shape == (len(points) + 2, 2) and np.isfinite(first.coords).all()
    assert first.shown == first.total == len(points)
    again = embedding_map(points, method, seed=0, query=query, cache=None)
    np.testing.assert_array_equal(first.coords, again.coords)


def test_tsne_depends_on_the_seed_and_pca_does_not():
    points, _ = clustered_points()
    tsne = [embedding_map(points, "tsne", seed=s, cache=None).coords for s in (0, 1)]
    assert not np.allclose(tsne[0], tsne[1])
    pca = [embedding_map(points, "pca", seed=s, cache=None).coords for s in (0, 1)]
    np.testing.assert_array_equal(pca[0], pca[1])


def test_pca_transforms_the_query_with_the_reference_fit():
    points, _ = clustered_points()
    with_query = embedding_map(points, "pca", query=points[5], cache=None).coords
    without = embedding_map(points, "pca", cache=None).coords
    np.testing.assert_allclose(with_query[:-1], without)  # the query does not move the fit
    np.testing.assert_allclose(with_query[-1], without[5])  # a query equal to a point lands on it


def test_tsne_keeps_clusters_apart():
    points, labels = clustered_points()
    coords = embedding_map(points, "tsne", cache=None).coords
    centres = np.array([coords[labels == c].mean(axis=0) for c in range(4)])
    spread = max(np.linalg.norm(coords[labels == c] - centres[c], axis=1).mean() for c in range(4))
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(4) for b in range(a + 1, 4)]
    assert min(gaps) > 2 * spread


@pytest.mark.parametrize("method", ["tsne", "pca"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_sets_do_not_crash(method, n):
    points = np.random.default_rng(n).normal(size=(n, 5))
    for query in (None, points[0]):
        coords = embedding_map(points, method, query=query, cache=None).coords
        assert coords.shape == (n + (query is not None), 2) and np.isfinite(coords).all()
    same = np.ones((n + 1, 5))  # one distinct point: sklearn would divide by zero (and t-SNE crash)
    assert not embedding_map(same, method, query=same[0], cache=None).coords.any()


def test_map_rejects_bad_input():
    with pytest.raises(KdaError, match="tsne, pca"):
        embedding_map(np.ones((3, 2)), "umap")
    with pytest.raises(KdaError, match="width"):
        embedding_map(np.ones((3, 2)), "pca", query=np.ones(3))


def test_cache_returns_the_same_projection():
    cache = ProjectionCache(maxsize=2)
    points, _ = clustered_points()
    first = embedding_map(points, "tsne", query=points[0], cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    again = embedding_map(points.copy(), "tsne", query=points[0].copy(), cache=cache)  # equal bytes, new arrays
    assert again is first and (cache.hits, cache.misses) == (1, 1)
    assert not again.coords.flags.writeable  # shared, so nobody may change it
    other_seed = embedding_map(points, "tsne", seed=1, query=points[0], cache=cache)
    assert other_seed is not first and cache.misses == 2
    embedding_map(points, "pca", cache=cache)
    assert len(cache) == 2  # bounded: the least recently used entry went
    assert embedding_map(points, "tsne", query=points[0], cache=cache) is not first


def test_subsampling_is_stratified_and_counted():
    points, labels = clustered_points(n_classes=5, per_class=60, dim=8)  # 300 points
    result = embedding_map(points, "pca", query=points[:1], max_points=100, labels=labels, cache=None)
    assert (result.shown, result.total) == (100, 300) and result.coords.shape == (101, 2)
    assert np.bincount(labels[result.index]).tolist() == [20] * 5
    np.testing.assert_array_equal(result.index, subsample(300, 100, labels, seed=0))
    assert len(subsample(300, 100)) == 100 and len(set(subsample(300, 100).tolist())) == 100
    assert subsample(50, 100).tolist() == list(range(50))


def maps_inputs(n_classes=4, per_class=10, seed=0):
    rng = np.random.default_rng(seed)
    knowledge = rng.normal(size=(n_classes, 12))  # (C, E)
    labels = np.repeat(np.arange(n_classes), per_class)  # (N,)
    rho = knowledge[labels] + 0.1 * rng.normal(size=(len(labels), 12))  # (N, E)
    audio = rng.normal(size=(len(labels), 6)) + labels[:, None]  # (N, Da)
    visual = rng.normal(size=(len(labels), 20)) - labels[:, None]  # (N, Dv)
    classes = Classes(*class_table(n_classes))
    return audio, visual, rho, labels, classes, knowledge, classes


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_embedding_maps_hold_samples_knowledge_and_query(method):
    audio, visual, rho, labels, classes, knowledge, _ = inputs = maps_inputs()
    query = Query(audio[0], visual[0], rho[0], name="upload.mp4")
    maps = embedding_maps(*inputs, query=query, method=method, cache=None)
    assert list(maps) == ["audio", "visual", "knowledge", "fused"]
    counts = {key: {k: m.kind.count(k) for k in ("sample", "knowledge", "query")} for key, m in maps.items()}
    assert counts["audio"] == counts["visual"] == {"sample": 40, "knowledge": 0, "query": 1}
    assert counts["knowledge"] == {"sample": 0, "knowledge": 4, "query": 0}
    assert counts["fused"] == {"sample": 40, "knowledge": 4, "query": 1}
    fused = maps["fused"]
    assert fused.coords.shape == (45, 2) and (fused.shown, fused.total) == (44, 44)
    assert fused.class_ids[:10] == ["Class00"] * 10 and fused.class_ids[40:44] == classes.ids
    assert fused.names[-1] == "upload.mp4" and fused.kind[-1] == "query" and not fused.seen[-1]
    assert fused.seen[:40].tolist() == [bool(classes.seen[c]) for c in labels]
    assert all(m.method == method for m in maps.values())
    label = "t-SNE" if method == "tsne" else "PCA"
    assert {key: m.title for key, m in maps.items()} == {  # points shown: 40 videos, 4 classes; the query apart
        "audio": f"Audio features, {label} (40 points)",
        "visual": f"Visual features, {label} (40 points)",
        "knowledge": f"Class matrix t_c (knowledge embeddings), {label} (4 points)",
        "fused": f"Fused embeddings rho_av and class matrix t_c, {label} (44 points)",
    }


def test_embedding_maps_subsample_the_same_samples_everywhere():
    inputs = maps_inputs(n_classes=4, per_class=30)  # 120 samples, 4 classes
    maps = embedding_maps(*inputs, method="pca", max_points=44, cache=None)
    fused, audio = maps["fused"], maps["audio"]
    assert (fused.shown, fused.total) == (44, 124) and "44 of 124 points" in fused.title
    assert (audio.shown, audio.total) == (40, 120) and "40 of 120 points" in audio.title
    assert audio.class_ids == fused.class_ids[:40]
    assert sorted(set(audio.class_ids)) == inputs[4].ids  # every class kept
    assert maps["knowledge"].shown == maps["knowledge"].total == 4


def test_embedding_maps_without_samples_and_with_a_width_mismatch():
    audio, visual, rho, labels, classes, knowledge, _ = maps_inputs()
    maps = embedding_maps(None, None, None, None, classes, knowledge, classes, method="pca", cache=None)
    assert list(maps) == ["knowledge", "fused"] and maps["fused"].kind == ["knowledge"] * 4
    with pytest.raises(KdaError, match="fused map"):
        embedding_maps(audio, visual, rho[:, :5], labels, classes, knowledge, classes, method="pca", cache=None)


def test_to_csv_round_trips():
    inputs = maps_inputs(n_classes=3, per_class=4)
    query = Query(inputs[0][0], inputs[1][0], inputs[2][0], name='my, "odd" video')
    fused = embedding_maps(*inputs, query=query, method="pca", cache=None)["fused"]
    rows = list(csv.DictReader(io.StringIO(fused.to_csv())))
    assert list(rows[0]) == ["x", "y", "class_id", "class_name", "seen", "kind", "set"]
    assert len(rows) == len(fused.coords) == 12 + 3 + 1
    np.testing.assert_array_equal([[float(r["x"]), float(r["y"])] for r in rows], fused.coords)
    assert [r["class_id"] for r in rows] == fused.class_ids and [r["class_name"] for r in rows] == fused.names
    assert [r["seen"] == "true" for r in rows] == fused.seen.tolist()
    assert [r["kind"] for r in rows] == fused.kind and {r["set"] for r in rows} == {"fused"}
    assert rows[-1]["class_name"] == 'my, "odd" video'


def test_embedding_maps_report_each_map_as_its_projection_starts():
    cache, heard = ProjectionCache(), []

    def progress(key: str, done: int, total: int) -> None:
        heard.append((key, done, total, len(cache)))  # projections finished when the stage is announced

    embedding_maps(*maps_inputs(), method="pca", cache=cache, progress=progress)
    assert heard == [("audio", 0, 4, 0), ("visual", 1, 4, 1), ("knowledge", 2, 4, 2), ("fused", 3, 4, 3)]
