import json
import math
import shutil
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest
import torch
from conftest import run_cli
from media_factory import needs_ffmpeg

from kda.benchmark import (
    EXTRACTION_MANIFEST,
    SYNTHETIC_MANIFEST,
    feature_source,
    load_benchmark,
    write_class_split,
    write_feature_file,
)
from kda.checkpoint import load_checkpoint, save_checkpoint
from kda.errors import KdaError
from kda.knowledge import TINY_TEXT_ENCODER
from kda.knowledge.class_matrix import ClassMatrix, load_class_matrix
from kda.knowledge.sources import shipped_path
from kda.knowledge.store import ClassKnowledge, Description, Knowledge, save_knowledge
from kda.losses import loss_preset
from kda.model import DimensionMismatchError, ModelConfig
from kda.settings import get_setting
from kda.studio import Studio
from kda.synth import KNOWLEDGE_FILE, SynthConfig, write_synthetic_benchmark
from kda.train import (
    EpochLog,
    TrainConfig,
    balanced_order,
    best_epoch,
    reference_samples,
    run_stage,
    to_checkpoint,
    train,
)

# A small network keeps dozens of epochs to a few seconds; the protocol does not depend on its size.
SMALL = {"audio_hidden": 16, "visual_hidden": 16, "width": 16, "heads": 2, "head_dim": 4, "ff_hidden": 8}


@pytest.fixture(scope="module")
def setup(ucf_synth):
    bench = load_benchmark(ucf_synth, "UCF", "cls")
    kv = load_class_matrix(ucf_synth / "knowledge_vectors.npz").bind(bench.classes, known=bench.all_classes)
    return bench, kv


def run(setup, **overrides):
    bench, kv = setup
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 64, **overrides})
    return train(bench, kv, get_setting("cls").model_config(**SMALL), loss_preset("kda"), cfg, progress=False)


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


EMBED = 16


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run several times faster on one thread than on contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    config = SynthConfig(train_videos=3, eval_videos=2, embed_dim=EMBED, latent_dim=6)
    write_synthetic_benchmark(root, "UCF", "main", config)
    bench = load_benchmark(root, "UCF", "main")
    knowledge = load_class_matrix(root / KNOWLEDGE_FILE).bind(bench.classes, known=bench.all_classes)
    return bench, knowledge


def model_config():
    return get_setting("main").model_config(embed_dim=EMBED, **SMALL)


def distances(model, videos, knowledge, seen, unseen):
    """(N, C) Euclidean distances to the stage's candidate classes, labels (N,) and seen mask (C,)."""
    candidates = sorted(seen + unseen)
    model.eval()
    with torch.no_grad():
        rho = model(torch.from_numpy(videos.audio), torch.from_numpy(videos.visual)).double().numpy()
    targets = knowledge[candidates].astype(np.float64)
    d = np.sqrt(((rho[:, None, :] - targets[None, :, :]) ** 2).sum(axis=2))
    labels = np.array([candidates.index(int(y)) for y in videos.labels])
    return d, labels, np.array([c in seen for c in candidates])


def reference_hm(d, labels, seen_mask, beta):
    """HM (percent) of mean per-class recall on seen and unseen videos, beta added to seen distances."""
    pred = np.argmin(d + beta * seen_mask, axis=1)

    def mean_recall(group):
        recalls = [np.mean(pred[labels == c] == c) for c in np.flatnonzero(group) if np.any(labels == c)]
        return float(np.mean(recalls)) if recalls else 0.0

    s, u = mean_recall(seen_mask), mean_recall(~seen_mask)
    return 100 * 2 * s * u / (s + u) if s + u else 0.0


def best_over_beta(d, labels, seen_mask):
    """(best HM over every beta >= 0, (lo, hi): the lowest interval of betas that reaches it).

    A video leaves its nearest seen class for its nearest unseen one when beta passes its gap (nearest
    unseen distance minus nearest seen distance), so HM is constant between consecutive gaps: one beta
    inside each interval sees every outcome."""
    gaps = np.unique(d[:, ~seen_mask].min(axis=1) - d[:, seen_mask].min(axis=1))
    edges = [0.0, *[float(g) for g in gaps if g > 0], math.inf]
    intervals = list(zip(edges[:-1], edges[1:], strict=True))
    probes = [0.0 if lo == 0.0 else (lo + hi) / 2 if hi < math.inf else lo + 1.0 for lo, hi in intervals]
    hms = [reference_hm(d, labels, seen_mask, b) for b in probes]
    best = int(np.argmax(hms))
    return hms[best], intervals[best]


def plateau_schedule(hms, lr, factor, patience):
    """The learning rate of each epoch when ReduceLROnPlateau(mode='max') steps on each epoch's HM: a new
    best needs a relative gain above 1e-4 (PyTorch's default threshold), and more than `patience` epochs
    without one multiply the rate by `factor`."""
    rates, best, bad = [], -math.inf, 0
    for hm in hms:
        rates.append(lr)
        if hm > best * (1 + 1e-4):
            best, bad = hm, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = lr * factor, 0
    return rates


def models_per_epoch(bench, knowledge, cfg, stage_number):
    """The model after each of cfg.epochs epochs of `stage_number`, each from its own deterministic run."""
    stage = bench.stage(stage_number)
    loss = loss_preset("kda")
    return [
        run_stage(stage, knowledge.vectors, model_config(), loss, cfg, stage_number, k, progress=False)[0]
        for k in range(1, cfg.epochs + 1)
    ]


def scores_per_epoch(models, stage, knowledge):
    return [
        best_over_beta(*distances(m, stage.evaluation, knowledge.vectors, stage.seen, stage.unseen)) for m in models
    ]


def first_argmax(values) -> int:
    """1-based index of the first maximum."""
    return max(range(len(values)), key=lambda i: (values[i], -i)) + 1


def test_best_epoch_is_the_first_epoch_with_the_highest_hm():
    log = [EpochLog(1, i + 1, 1e-3, 0.0, 0.0, None, {"hm": hm}) for i, hm in enumerate([10.0, 30.0, 20.0, 30.0, 5.0])]
    assert best_epoch(log) == 2


# (seed, lr) settings tried in order; the first whose validation HM dips, peaks before the last epoch and
# makes the plateau scheduler lower the rate before that peak is used (the first one does, as of writing).
PAPER_RUNS = [(2, 1e-2), (0, 1e-1), (1, 1e-1), (4, 3e-2)]


def test_paper_protocol_takes_epoch_beta_and_schedule_from_validation(bench, capsys):
    bench_, knowledge = bench
    stage_1, stage_2 = bench_.stage(1), bench_.stage(2)
    for seed, lr in PAPER_RUNS:
        cfg = TrainConfig(epochs=6, batch_size=16, lr=lr, seed=seed, lr_patience=0, lr_factor=0.5, beta_grid="gaps")
        scores = scores_per_epoch(models_per_epoch(bench_, knowledge, cfg, 1), stage_1, knowledge)
        hms = [hm for hm, _ in scores]
        expected = first_argmax(hms)
        schedule = plateau_schedule(hms, lr, cfg.lr_factor, cfg.lr_patience)
        if any(np.diff(hms) < 0) and expected < len(hms) and min(schedule[:expected]) < lr:
            break
    else:
        pytest.fail(f"no run in {PAPER_RUNS} has a validation HM that dips, peaks early and lowers the rate")

    seen_by_callback = []
    result = train(
        bench_, knowledge, model_config(), loss_preset("kda"), cfg, progress=False, on_epoch=seen_by_callback.append
    )

    assert "stage 1" not in capsys.readouterr().err  # progress=False: no progress bars
    assert result.best_epoch == expected, (hms, result.best_epoch)
    assert seen_by_callback == result.log  # every epoch reported as it ends
    assert [(e.stage, e.epoch) for e in result.log] == [(1, k) for k in range(1, 7)] + [
        (2, k) for k in range(1, expected + 1)
    ]
    assert all(e.metrics is None for e in result.log if e.stage == 2)  # test is not looked at while training
    assert all(e.align > 0 and e.margin > 0 and e.loss == pytest.approx(e.align + e.margin) for e in result.log)
    best_hm, (lo, hi) = scores[expected - 1]
    assert lo <= result.beta < hi  # the smallest betas that reach the best validation HM
    assert result.validation.hm == pytest.approx(best_hm)
    stage_2_log = [e for e in result.log if e.stage == 2]
    assert [e.lr for e in stage_2_log] == pytest.approx(schedule[:expected])  # replayed, lowered rate included
    # Test is scored once, with the beta chosen on validation (not one searched on test).
    test_d = distances(result.model, stage_2.evaluation, knowledge.vectors, stage_2.seen, stage_2.unseen)
    assert result.test.beta == result.beta and result.test.grid.startswith("beta chosen on validation, gaps: ")
    assert result.test.hm == pytest.approx(reference_hm(*test_d, result.beta))


# Settings for the released protocol: the first must tie the best test HM between two epochs before the last.
RELEASED_RUNS = [(3, 1e-12), (0, 1e-12), (5, 1e-12)]


def test_released_protocol_returns_the_model_of_its_best_epoch(bench, capsys):
    bench_, knowledge = bench
    stage_2 = bench_.stage(2)
    for seed, lr in RELEASED_RUNS:
        cfg = TrainConfig(epochs=5, batch_size=16, lr=lr, seed=seed, lr_patience=0, protocol="released")
        models = models_per_epoch(bench_, knowledge, cfg, 2)
        scores = scores_per_epoch(models, stage_2, knowledge)
        hms = [hm for hm, _ in scores]
        expected = first_argmax(hms)
        if hms.count(max(hms)) > 1 and expected < len(hms):
            break
    else:
        pytest.fail(f"no run in {RELEASED_RUNS} ties its best test HM before the last epoch")

    seen_by_callback = []
    with pytest.warns(UserWarning, match="TEST set"):
        result = train(
            bench_, knowledge, model_config(), loss_preset("kda"), cfg, progress=True, on_epoch=seen_by_callback.append
        )

    assert "stage 2" in capsys.readouterr().err  # the progress bar, on stderr
    assert result.best_epoch == expected, (hms, result.best_epoch)  # the first of the tied epochs
    assert [(e.stage, e.epoch) for e in result.log] == [(2, k) for k in range(1, 6)] and result.validation is None
    assert seen_by_callback == result.log  # every epoch reported as it ends
    evaluation = (stage_2.evaluation, knowledge.vectors, stage_2.seen, stage_2.unseen)
    returned, at_best = distances(result.model, *evaluation)[0], distances(models[expected - 1], *evaluation)[0]
    np.testing.assert_allclose(returned, at_best, rtol=0, atol=1e-6)
    tied_later = hms.index(max(hms), expected)  # 0-based index of the next epoch with the same HM
    for other in (models[tied_later], models[-1]):
        assert not np.allclose(returned, distances(other, *evaluation)[0], rtol=0, atol=1e-6)
    best_hm, (lo, hi) = scores[expected - 1]
    assert result.test.hm == pytest.approx(best_hm) and lo <= result.beta < hi


def mini_root(root, train_videos=2, nan=False):
    """A three-class root in the 'main' layout with 4-d audio and 6-d visual features: class A seen, B unseen in
    stage 1, C unseen in stage 2; `train_videos` videos of A to train stage 1 on."""
    splits = {
        "stage_1_train": ["A"],
        "stage_1_val_seen": ["A"],
        "stage_1_val_unseen": ["B"],
        "stage_2_train": ["A", "B"],
        "stage_2_test_seen": ["A", "B"],
        "stage_2_test_unseen": ["C"],
    }
    write_class_split(root, "mini", "main", ["A", "B", "C"], {}, splits)
    rng = np.random.default_rng(0)
    videos = {("A", "stage_1_train"): train_videos, ("A", "stage_1_val_seen"): 2, ("B", "stage_1_val_unseen"): 2}
    videos |= {("A", "stage_2_test_seen"): 2, ("B", "stage_2_test_seen"): 2, ("C", "stage_2_test_unseen"): 2}
    for (label, folder), n in videos.items():
        urls = [f"{label}_{folder}_{i}" for i in range(n)]
        audio = rng.random((n, 4))
        if nan and folder == "stage_1_train":
            audio[0, 0] = np.nan
        write_feature_file(root, "main", "audio", folder, label, audio, urls)
        write_feature_file(root, "main", "video", folder, label, rng.random((n, 6)), urls)
    return load_benchmark(root, "mini", "main")


def mini_train(bench, knowledge=None, **cfg):
    knowledge = knowledge or ClassMatrix(["A", "B", "C"], np.eye(3, 8, dtype=np.float32), "precomputed")
    model = ModelConfig(audio_dim=4, visual_dim=6, audio_hidden=8, visual_hidden=8, width=8, embed_dim=8, heads=1,
                        head_dim=4, ff_hidden=4)  # fmt: skip
    return train(
        bench,
        knowledge,
        model,
        loss_preset("kda"),
        TrainConfig(**{"epochs": 1, "batch_size": 4, **cfg}),
        progress=False,
    )


def test_too_few_training_videos(tmp_path):
    bench = mini_root(tmp_path, train_videos=1)
    with pytest.raises(KdaError, match=r"^1 training videos: at least 2 are needed to form a batch$"):
        mini_train(bench)
    two = mini_train(mini_root(tmp_path / "two", train_videos=2))  # two are enough: one batch of two
    assert [(e.stage, e.epoch) for e in two.log] == [(1, 1), (2, 1)] and two.best_epoch == 1
    assert len(mini_train(mini_root(tmp_path / "one_batch"), batches_per_epoch=1).log) == 2  # one batch an epoch


def test_diverged_loss(tmp_path):
    with pytest.raises(KdaError, match=r"training diverged \(non-finite loss\); lower `lr` or check the features"):
        mini_train(mini_root(tmp_path, nan=True))


def test_knowledge_not_bound_to_the_benchmark(tmp_path):
    bench = mini_root(tmp_path)
    unbound = ClassMatrix(["C", "B", "A"], np.eye(3, 8, dtype=np.float32), "precomputed")  # another order
    with pytest.raises(
        KdaError, match=r"the class matrix is not bound to the benchmark's class list \(use ClassMatrix.bind\)"
    ):
        mini_train(bench, unbound)
    wide = ClassMatrix(["A", "B", "C"], np.eye(3, 16, dtype=np.float32), "precomputed")
    with pytest.raises(DimensionMismatchError, match=r"class-matrix rows have 16 dims but the model's embed_dim is 8"):
        mini_train(bench, wide)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"protocol": "test-set"}, r"unknown protocol 'test-set'; choose one of paper, released"),
        ({"beta_grid": "fine"}, r"unknown beta grid 'fine'; choose one of gaps, avca"),
        ({"batches_per_epoch": 0}, r"`batches_per_epoch` must be at least 1 \(or None for one pass\), not 0"),
    ],
)
def test_unknown_training_settings(tmp_path, settings, message):
    with pytest.raises(KdaError, match=message):
        mini_train(mini_root(tmp_path), **settings)


def extracted_features(root, weights):
    """What the checkpoint must record of a root `kda extract` wrote: its backbones and caps, and the weights."""
    manifest = json.loads((root / EXTRACTION_MANIFEST).read_text())
    assert (manifest["audio_backbone"], manifest["visual_backbone"]) == ("vggish", "c3d")
    assert "1 C3D clips" in manifest["caps"] and "1 audio examples" in manifest["caps"]
    return {
        "source": "kda extract",
        "weights": weights,
        **{k: manifest[k] for k in ("audio_backbone", "visual_backbone", "caps")},
    }


@pytest.fixture(scope="module")
def knowledge_file(tmp_path_factory):
    """Descriptions of the tiny dataset's three classes, to be encoded with the tiny text encoder."""
    knowledge = Knowledge("tiny", {}, {"author": "test"})
    for label, text in (("A", "A red square."), ("B", "A green square."), ("C", "A blue square.")):
        knowledge.set_class(label, ClassKnowledge(label, (Description("other", text),)))
    return save_knowledge(knowledge, tmp_path_factory.mktemp("knowledge") / "tiny.json")


def train_cli(root, dataset, out, *extra, batch_size=2):
    code, stdout, stderr = run_cli(
        "train", "--root", root, "--dataset", dataset, "--setting", "cls", "--out", out, "--epochs", 1,
        "--batch-size", batch_size, "--samples-per-class", 1, "--quiet", *extra,
    )  # fmt: skip
    assert code == 0, stderr
    assert stdout.strip().splitlines()[-1] == f"checkpoint written to {out}"
    return json.loads((out / "config.json").read_text())


@pytest.mark.media
@needs_ffmpeg
def test_offline_extraction_is_recorded_in_the_checkpoint(tiny_root, knowledge_file, tmp_path):
    out = tmp_path / "ck"
    config = train_cli(tiny_root, "tiny", out, "--knowledge", knowledge_file, "--text-encoder", TINY_TEXT_ENCODER)
    assert config["features"] == {"setting": "cls", "audio_dim": 128, "visual_dim": 4096, "weights": "offline"}
    provenance = config["provenance"]
    assert provenance["features"] == extracted_features(tiny_root, "offline")
    assert (provenance["dataset"], provenance["root"], provenance["setting"]) == ("tiny", str(tiny_root), "cls")
    assert provenance["knowledge"] == str(knowledge_file)
    assert config["text_encoder"] == TINY_TEXT_ENCODER
    assert sorted(config["knowledge"]["classes"]) == ["A", "B", "C"]
    assert [(c["id"], c["seen"]) for c in config["classes"]] == [("A", True), ("B", True), ("C", False)]
    ckpt = load_checkpoint(out)
    assert ckpt.feature_weights == "offline" and ckpt.text_vectors.encoder == TINY_TEXT_ENCODER
    assert Studio(ckpt).offline  # the app runs the offline extractor, and says so


@pytest.mark.media
@needs_ffmpeg
def test_pretrained_extraction_is_recorded_as_pretrained(tiny_root, knowledge_file, tmp_path):
    root = tmp_path / "pretrained"
    shutil.copytree(tiny_root, root)
    manifest = json.loads((root / EXTRACTION_MANIFEST).read_text())
    manifest["offline"] = False  # what `kda extract --weights pretrained` writes (its weights cannot be had here)
    (root / EXTRACTION_MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "ck"
    config = train_cli(root, "tiny", out, "--knowledge", knowledge_file, "--text-encoder", TINY_TEXT_ENCODER)
    assert config["features"]["weights"] == "pretrained"
    assert config["provenance"]["features"] == extracted_features(root, "pretrained")
    assert not Studio(load_checkpoint(out)).offline


def test_synthetic_root_is_recorded_as_synthetic(ucf_synth, tmp_path):
    out = tmp_path / "ck"
    config = train_cli(ucf_synth, "UCF", out, batch_size=256)
    assert config["features"]["weights"] == "none"
    features = config["provenance"]["features"]
    synthetic = json.loads((ucf_synth / SYNTHETIC_MANIFEST).read_text())
    assert features == {"source": "synthetic", "weights": "none", **synthetic}
    assert config["text_encoder"] == "synthetic" and config["provenance"]["knowledge"].endswith("knowledge_vectors.npz")
    studio = Studio(load_checkpoint(out))
    assert studio.offline and "synthetic" in studio.banner


def test_public_features_without_a_manifest_are_recorded_as_pretrained(ucf_synth, tmp_path):
    root = tmp_path / "public"
    shutil.copytree(ucf_synth / "class-split", root / "class-split")  # what the public AVCA download looks like
    assert feature_source(root) == {"source": "benchmark features", "weights": "pretrained"}
    (root / SYNTHETIC_MANIFEST).write_text((ucf_synth / SYNTHETIC_MANIFEST).read_text())
    assert feature_source(root)["weights"] == "none"
