"""Knowledge A/B on the benchmark (`kda.knowledge_ab`): a stored test split scored under edited knowledge, checked
against a plain reference (loops over videos); the split a checkpoint stores (float16 only where that changes
nothing) and its file; and a trained checkpoint whose stored split gives its recorded test metrics exactly."""

import json
import shutil
from collections import Counter

import numpy as np
import pytest
from checkpoint_factory import forget_digests
from conftest import run_cli

from kda.benchmark import load_benchmark
from kda.checkpoint import CheckpointError, TestSplit, load_checkpoint, save_test_split
from kda.errors import KdaError
from kda.knowledge_ab import KnowledgeAB, compact
from kda.prediction import Candidates

BETA = 0.15


def reference(rho, truth, ids, seen, matrix, beta):
    """Plain loops: each video's prediction (a class id), and S, U, HM, ZSL in percent."""
    predicted, zsl_predicted = [], []
    for r in rho.astype(np.float64):
        d = [float(np.sqrt(((r - t) ** 2).sum())) + (beta if s else 0.0) for t, s in zip(matrix, seen, strict=True)]
        predicted.append(ids[int(np.argmin(d))])
        unseen = [(d[i], ids[i]) for i in range(len(ids)) if not seen[i]]
        zsl_predicted.append(min(unseen)[1])
    seen_of = dict(zip(ids, seen, strict=True))

    def recall(pred, group):
        classes = sorted({t for t in truth if seen_of[t] == group})
        return float(np.mean([np.mean([p == c for p, t in zip(pred, truth, strict=True) if t == c]) for c in classes]))

    s, u, z = recall(predicted, True), recall(predicted, False), recall(zsl_predicted, False)
    return predicted, (100 * s, 100 * u, 100 * 2 * s * u / (s + u), 100 * z)


@pytest.fixture
def problem():
    """60 videos of 6 classes (4 seen), rho near their class rows; the base knowledge and an edited one."""
    rng = np.random.default_rng(3)
    ids = ["a", "b", "c", "d", "e", "f"]
    seen = np.array([True, True, True, True, False, False])
    matrix = rng.normal(size=(6, 8)).astype(np.float32)
    labels = np.repeat(np.arange(6), 10)
    rho = (matrix[labels] + 0.9 * rng.normal(size=(60, 8))).astype(np.float32)
    split = TestSplit(rho, labels, [f"v{i}" for i in range(60)])
    base = Candidates(ids, [i.upper() for i in ids], seen, matrix)
    edited = matrix.copy()
    edited[4] = matrix[0] * 0.9 + matrix[4] * 0.1  # unseen 'e' described like seen 'a': it steals from 'a'
    added = rng.normal(size=(1, 8)).astype(np.float32)
    after = Candidates([*ids, "new"], [*base.names, "NEW"], np.append(seen, False), np.vstack([edited, added]))
    return split, base, after


def test_metrics_moves_and_class_accuracy_match_plain_loops(problem):
    split, base, after = problem
    ab = KnowledgeAB(split, base.class_ids, base, BETA)
    comparison = ab.compare(after, changed=["e", "new"])
    truth = [base.class_ids[y] for y in split.labels]
    was, expected_base = reference(split.rho_av, truth, base.class_ids, base.seen, base.class_matrix, BETA)
    now, expected_now = reference(split.rho_av, truth, after.class_ids, after.seen, after.class_matrix, BETA)
    for result, expected in ((comparison.checkpoint, expected_base), (comparison.edited, expected_now)):
        np.testing.assert_allclose([result.seen, result.unseen, result.hm, result.zsl], expected, atol=1e-9)
        assert result.beta == BETA
    moves = Counter((t, w, n) for t, w, n in zip(truth, was, now, strict=True) if w != n)
    assert moves and {(m.truth, m.was, m.now): m.videos for m in comparison.moves} == dict(moves)
    assert [m.videos for m in comparison.moves] == sorted(moves.values(), reverse=True)
    assert ("a", "a", "e") in moves  # the edit's effect: videos of 'a' now go to 'e'
    involved = {"e", "new"} | {c for move in moves for c in move}
    assert {c.class_id for c in comparison.classes} == involved
    assert [c.class_id for c in comparison.classes[:2]] in (["e", "new"], ["new", "e"])  # edited ones first
    for c in comparison.classes:
        mine = [i for i, t in enumerate(truth) if t == c.class_id]
        assert c.videos == len(mine) and c.edited == (c.class_id in {"e", "new"})
        if mine:
            assert c.checkpoint == pytest.approx(100 * np.mean([was[i] == c.class_id for i in mine]))
            assert c.now == pytest.approx(100 * np.mean([now[i] == c.class_id for i in mine]))
        else:
            assert c.checkpoint is None and c.now is None  # the added class has no test videos
    assert comparison.edited.seen < comparison.checkpoint.seen  # 'e' took seen videos of 'a'


def test_the_checkpoints_own_knowledge_in_any_order_changes_nothing(problem):
    split, base, _ = problem
    ab = KnowledgeAB(split, base.class_ids, base, BETA)
    order = [5, 2, 0, 4, 1, 3]
    shuffled = Candidates(
        [base.class_ids[i] for i in order], [base.names[i] for i in order], base.seen[order], base.class_matrix[order]
    )
    comparison = ab.compare(shuffled)
    assert comparison.edited == comparison.checkpoint and comparison.moves == [] and comparison.classes == []
    data = comparison.to_json()
    assert data["videos"] == 60 and data["split"] == "stage_2_test" and data["edited"] == data["checkpoint"]


def test_knowledge_without_a_tested_class_is_refused_by_name(problem):
    split, base, _ = problem
    ab = KnowledgeAB(split, base.class_ids, base, BETA)
    fewer = Candidates(base.class_ids[:5], base.names[:5], base.seen[:5], base.class_matrix[:5])
    with pytest.raises(KdaError, match="lacks 1 classes of the test split: f"):
        ab.compare(fewer)


def test_compact_keeps_float16_only_when_no_prediction_changes():
    ids = ["a", "b"]
    base = Candidates(ids, ids, np.array([True, True]), np.array([[0.0, 0.0], [2.0002, 0.0]], np.float32))
    far = TestSplit(np.array([[0.1, 0.0], [1.9, 0.0]], np.float32), np.array([0, 1]), ["x", "y"])
    assert compact(far, ids, base, 0.0).rho_av.dtype == np.float16
    # 1.0002 is nearer 'b' (1.0000 away) than 'a'; in float16 it is 1.0, nearer 'a': float16 would change it
    tie = TestSplit(np.array([[1.0002, 0.0], [1.9, 0.0]], np.float32), np.array([0, 1]), ["x", "y"])
    kept = compact(tie, ids, base, 0.0)
    assert kept.rho_av.dtype == np.float32
    np.testing.assert_array_equal(kept.rho_av, tie.rho_av)


@pytest.fixture(scope="module", params=["paper", "released"])
def trained(request, ucf_synth, tmp_path_factory):
    """A checkpoint `kda train` made (2 epochs on the small synthetic UCF root) under each protocol."""
    out = tmp_path_factory.mktemp(f"trained_{request.param}") / "ck"
    code, _, stderr = run_cli(
        "train", "--root", ucf_synth, "--dataset", "UCF", "--epochs", 2, "--protocol", request.param,
        "--quiet", "--out", out,
    )  # fmt: skip
    assert code == 0, stderr
    return out


def test_a_trained_checkpoints_test_split_gives_its_recorded_test_metrics_exactly(trained, ucf_synth, tmp_path):
    ckpt = load_checkpoint(trained)
    recorded = ckpt.metrics["test"]
    split = ckpt.test_split
    assert len(split) == len(load_benchmark(ucf_synth, "UCF", "cls").stage(2).evaluation.labels) == 48 * 4
    assert split.rho_av.dtype == np.float16  # rounding changed no metric here
    got = KnowledgeAB.of_checkpoint(ckpt).base.metrics
    assert (got.seen, got.unseen, got.hm, got.zsl, got.beta) == tuple(
        recorded[k] for k in ("seen", "unseen", "hm", "zsl", "beta")
    )
    code, stdout, stderr = run_cli("evaluate", "--checkpoint", trained, "--json", tmp_path / "m.json")  # no --root
    assert code == 0, stderr
    printed = json.loads((tmp_path / "m.json").read_text())
    assert {k: printed[k] for k in ("seen", "unseen", "hm", "zsl", "beta")} == {
        k: recorded[k] for k in ("seen", "unseen", "hm", "zsl", "beta")
    }


def test_a_damaged_test_split_is_named(trained, tmp_path):
    ckpt = load_checkpoint(trained)
    folder = tmp_path / "ck"
    shutil.copytree(trained, folder)
    forget_digests(folder)  # so that reading the damaged file speaks, not the digest check
    path = folder / "test_split.safetensors"
    n = len(ckpt.test_split)
    labels = ckpt.test_split.labels.copy()
    labels[0] = 48  # the checkpoint has 48 classes
    save_test_split(TestSplit(ckpt.test_split.rho_av, labels, ckpt.test_split.urls), path)
    with pytest.raises(CheckpointError, match=rf"test_split.safetensors does not match .* {n} labels from 0 to 48, "):
        load_checkpoint(folder)
    save_test_split(TestSplit(ckpt.test_split.rho_av[:, :100], ckpt.test_split.labels, ckpt.test_split.urls), path)
    with pytest.raises(CheckpointError, match=rf"rho_av float16 \({n}, 100\).* embed_dim 512"):
        load_checkpoint(folder)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read the test split"):
        load_checkpoint(folder)
    path.unlink()  # a checkpoint from before test splits: loads, and A/B says why it cannot run
    assert load_checkpoint(folder).test_split is None
    code, _, stderr = run_cli("evaluate", "--checkpoint", folder)
    assert code == 1 and "carries no test split" in stderr and "--root" in stderr
