import json
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from kda.benchmark import load_benchmark
from kda.knowledge.class_matrix import load_class_matrix
from kda.knowledge.sources import shipped_path
from kda.losses import loss_preset
from kda.settings import get_setting
from kda.train import TrainConfig, balanced_order, reference_samples, to_checkpoint, train


@pytest.fixture(scope="module")
def setup(ucf_synth):
    bench = load_benchmark(ucf_synth, "UCF", "cls")
    kv = load_class_matrix(ucf_synth / "knowledge_vectors.npz").bind(bench.classes, known=bench.all_classes)
    return bench, kv


def run(setup, **overrides):
    bench, kv = setup
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 64, **overrides})
    return train(bench, kv, get_setting("cls").model_config(), loss_preset("kda"), cfg, progress=False)


def test_two_stage_protocol_selects_on_validation(setup):
    result = run(setup)
    stage_1 = [e for e in result.log if e.stage == 1]
    stage_2 = [e for e in result.log if e.stage == 2]
    assert len(stage_1) == 3  # every stage-1 epoch is scored on validation, with the beta searched on the gaps
    assert [set(e.metrics) for e in stage_1] == [{"seen", "unseen", "hm", "zsl", "beta", "grid"}] * 3
    assert all(e.metrics["grid"].startswith("gaps: ") for e in stage_1)
    hms = [e.metrics["hm"] for e in stage_1]
    assert result.best_epoch == hms.index(max(hms)) + 1 and len(stage_2) == result.best_epoch
    assert all(e.metrics is None for e in stage_2)  # test is evaluated once, after stage 2
    assert result.beta == result.validation.beta == result.test.beta
    assert [e.lr for e in stage_2] == [e.lr for e in stage_1[: result.best_epoch]]


def test_same_seed_same_result(setup):
    a, b = run(setup, epochs=2), run(setup, epochs=2)
    assert a.test == b.test
    assert [e.loss for e in a.log] == [e.loss for e in b.log]


def test_released_protocol_warns_and_selects_on_test(setup):
    with pytest.warns(UserWarning, match="TEST set"):
        result = run(setup, protocol="released", epochs=2)
    assert result.validation is None and all(e.stage == 2 for e in result.log)
    assert result.test.hm == max(e.metrics["hm"] for e in result.log)


def test_balanced_order_draws_every_class_about_equally():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    order = balanced_order(labels, np.random.default_rng(0))
    counts = np.bincount(labels[order], minlength=3)
    assert len(order) == len(labels) and counts.min() > 0.8 * counts.max()


# -- the checkpoint of a run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The outcome of a run on a synthetic UCF root, with the real UCF knowledge file and a vector for each class
    and each text (random: `to_checkpoint` carries vectors, it does not make them). What training chose is made
    up here too: `to_checkpoint` only records it."""
    from kda.knowledge import load_knowledge
    from kda.knowledge.class_matrix import ClassMatrix, TextVectors
    from kda.metrics import GZSLResult
    from kda.model import KDAModel
    from kda.synth import SynthConfig, write_synthetic_benchmark
    from kda.train import TrainResult

    root = tmp_path_factory.mktemp("small_run")
    write_synthetic_benchmark(root, "UCF", "main", SynthConfig(train_videos=2, eval_videos=4, embed_dim=512))
    bench = load_benchmark(root, "UCF", "main")
    knowledge, rng = load_knowledge(shipped_path("UCF")), np.random.default_rng(0)
    texts = sorted({t for c in knowledge.class_ids for t in knowledge.texts(c)})
    per_text = dict(zip(texts, rng.normal(size=(len(texts), 512)), strict=True))
    text_vectors = TextVectors("some-encoder", "f1ngerprint", per_text)
    vectors = rng.normal(size=(len(knowledge.class_ids), 512)).astype(np.float32)
    kv = ClassMatrix(knowledge.class_ids, vectors, "some-encoder", knowledge, text_vectors)
    kv = kv.bind(bench.classes, known=bench.all_classes)
    small = {"audio_hidden": 8, "visual_hidden": 8, "width": 8, "heads": 1, "head_dim": 4, "ff_hidden": 4}
    model = KDAModel(get_setting("main").model_config(**small))
    validation, test = (
        GZSLResult(60.0, 40.0, 48.0, 45.0, 0.3, "gaps: 5 values"),
        GZSLResult(70.0, 30.0, 42.0, 35.0, 0.3),
    )
    result = TrainResult(model, 0.3, 2, validation, test)
    return bench, kv, loss_preset("kda"), TrainConfig(epochs=2, batch_size=32, seed=4), result


def test_a_checkpoint_of_a_run_records_the_run(small_run, tmp_path):
    import kda
    from kda.checkpoint import load_checkpoint, save_checkpoint

    bench, kv, loss, cfg, result = small_run
    seen, unseen = bench.splits["stage_2_train"], bench.splits["stage_2_test_unseen"]
    ids = sorted(seen + unseen)
    # UCF's 51 classes of the main setting: readable names, not the ids again, except the nine one-word ids
    assert len(ids) == 51 and bench.readable["ApplyEyeMakeup"] == "Apply Eye Makeup"
    one_word = ["Archery", "Bowling", "Haircut", "Hammering", "Knitting", "Rafting", "Shotput", "Surfing", "Typing"]
    assert [c for c in ids if bench.readable[c] == c] == one_word
    readable = {c: name for c, name in bench.readable.items() if c != "ApplyLipstick"}  # one with no readable name
    bench = replace(bench, readable=readable)
    save_checkpoint(to_checkpoint(result, bench, kv, loss, cfg, provenance={"command": "kda train"}), tmp_path / "ck")
    ckpt = load_checkpoint(tmp_path / "ck")

    assert [(c.id, c.name, c.seen) for c in ckpt.classes] == [(c, readable.get(c, c), c in seen) for c in ids]
    assert ckpt.classes[1].name == "ApplyLipstick"  # the id stands in for the missing readable name
    np.testing.assert_array_equal(ckpt.class_matrix, kv.vectors[[bench.classes.index(c) for c in ids]])
    assert (ckpt.text_encoder, ckpt.beta, ckpt.feature_weights) == ("some-encoder", result.beta, "none")
    assert ckpt.knowledge.class_ids == ids and ckpt.knowledge.class_set == kv.knowledge.class_set
    assert set(ckpt.text_vectors.vectors) == {t for c in ids for t in kv.knowledge.texts(c)}
    assert ckpt.metrics == {
        "best_epoch": result.best_epoch,
        "test": result.test.to_dict(),
        "validation": result.validation.to_dict(),
    }
    provenance = dict(ckpt.provenance)
    assert datetime.fromisoformat(provenance.pop("created")).utcoffset() == timedelta(0)  # UTC, said so
    synthetic = json.loads((bench.root / "synthetic.json").read_text())
    assert provenance == {
        "dataset": "UCF",
        "root": str(bench.root),
        "setting": "main",
        "features": {"source": "synthetic", "weights": "none", **synthetic},
        "protocol": "paper",
        "loss": loss.to_dict(),
        "train": json.loads(json.dumps(cfg.to_dict())),  # as JSON keeps it: tuples become lists
        "kda_version": kda.__version__,
        "command": "kda train",
    }
    # the reference sample: by default 3 test videos of every class, drawn with the run's seed
    samples, evaluation = ckpt.samples, bench.stage(2).evaluation
    assert np.bincount(samples.labels, minlength=len(ids)).tolist() == [3] * len(ids)
    assert samples.urls == reference_samples(evaluation, bench.classes, ids, 3, cfg.seed).urls
    row = {url: i for i, url in enumerate(evaluation.urls)}
    for label, url, audio in zip(samples.labels, samples.urls, samples.audio, strict=True):
        assert bench.classes[evaluation.labels[row[url]]] == ids[label]
        np.testing.assert_array_equal(audio, evaluation.audio[row[url]])


def test_a_checkpoint_keeps_only_the_benchmarks_classes_of_wider_knowledge(small_run):
    """Knowledge of more classes than the benchmark has (a whole knowledge file) is no error: the checkpoint
    takes the rows of the benchmark's stage-2 classes."""
    from kda.knowledge.class_matrix import ClassMatrix

    bench, kv, loss, cfg, result = small_run
    extra = np.ones((1, kv.vectors.shape[1]), np.float32)
    wider = ClassMatrix([*kv.names, "Juggling"], np.vstack([kv.vectors, extra]), kv.encoder)
    ckpt = to_checkpoint(result, bench, wider, loss, cfg, samples_per_class=0)
    assert ckpt.class_ids == sorted(bench.splits["stage_2_train"] + bench.splits["stage_2_test_unseen"])
    np.testing.assert_array_equal(ckpt.class_matrix, kv.vectors[[kv.names.index(c) for c in ckpt.class_ids]])


def test_reference_samples_are_distinct_videos_of_each_class_drawn_with_the_seed(small_run):
    bench, *_ = small_run
    evaluation = bench.stage(2).evaluation
    ids = sorted(bench.splits["stage_2_test_unseen"])  # a few of the classes: the others' videos are not drawn
    draw = reference_samples(evaluation, bench.classes, ids, 2, seed=1)
    assert draw.labels.tolist() == [k for k in range(len(ids)) for _ in range(2)]
    rows = [evaluation.urls.index(url) for url in draw.urls]
    assert [bench.classes[evaluation.labels[r]] for r in rows] == [ids[k] for k in draw.labels]
    assert reference_samples(evaluation, bench.classes, ids, 2, seed=1).urls == draw.urls
    assert reference_samples(evaluation, bench.classes, ids, 2, seed=2).urls != draw.urls
    everything = reference_samples(evaluation, bench.classes, ids, 10, seed=1)  # more than there are: all 4
    assert len(set(everything.urls)) == len(everything.urls) == 4 * len(ids)
    assert reference_samples(evaluation, bench.classes, ids, 1, seed=1).labels.tolist() == list(range(len(ids)))
    assert reference_samples(evaluation, bench.classes, ids, 0, seed=1) is None
