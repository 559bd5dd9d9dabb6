"""The library the app stands on: the bundled demo checkpoint through `Studio` and `KnowledgeSession`, with
the real all-MiniLM-L6-v2 text encoder and real media made by ffmpeg."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from kda.checkpoint import load_checkpoint
from kda.errors import KdaError
from kda.knowledge.class_matrix import load_class_matrix
from kda.knowledge.store import KnowledgeError, save_knowledge
from kda.losses import adaptive_margins
from kda.media import extract as extract_module
from kda.media.errors import NotMediaError
from kda.media.pipeline import Networks
from kda.studio import Studio

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "checkpoints" / "demo-ucf-cls"
UNRELATED = [
    "A spreadsheet of quarterly tax figures for a small accounting firm.",
    "Rows of numbers in grey cells on a computer screen.",
    "The quiet hum of an office air conditioner.",
]


def sample_accuracy(studio, session, class_id) -> float:
    samples = studio.samples
    label = studio.checkpoint.class_ids.index(class_id)
    rows = np.flatnonzero(samples.labels == label)
    hits = [studio.classify_sample(int(i), session).gzsl[0].class_id == class_id for i in rows]
    return float(np.mean(hits))


def test_demo_checkpoint_says_what_it_is(studio):
    ckpt = studio.checkpoint
    assert ckpt.text_encoder == "sentence-transformers/all-MiniLM-L6-v2" and ckpt.feature_weights == "none"
    assert ckpt.class_matrix.shape == (48, 384) and int(ckpt.seen_mask.sum()) == 42
    assert studio.offline and "mean nothing" in studio.banner and "synthetic" in studio.banner
    assert ckpt.knowledge.provenance["prompts"]["visual"].startswith("What is the visual appearance")
    assert len(studio.samples) == 48 * 4
    assert ckpt.metrics["test"]["hm"] > 30  # far above the 1/48 chance level: the knowledge carries the signal


def test_edit_re_encodes_only_edited_texts_and_matches_training_encoding(studio, tmp_path):
    session = studio.new_session()
    entry = session.entry("ApplyLipstick")
    texts = [d.text for d in entry.descriptions]
    texts[1] = "A person paints their lips with a small stick of red colour in front of a mirror."
    known = len(studio.builder.recent)
    session.edit("ApplyLipstick", texts)
    assert session.last_encoded == 1  # the one new text; the name and the other two come from the cache
    assert len(studio.builder.recent) == known + 1  # the checkpoint's own texts stay in builder.vectors
    # the same t_c as encoding the edited knowledge from scratch, the way `kda train` does
    save_knowledge(session.knowledge, tmp_path / "edited.json")
    scratch = load_class_matrix(tmp_path / "edited.json", studio.checkpoint.text_encoder).bind(session.class_ids)
    np.testing.assert_allclose(session.class_matrix, scratch.vectors, atol=1e-6)
    assert session.version == 1 and studio.base.version == 0  # the studio's own view is untouched


def test_unrelated_descriptions_hurt_an_unseen_class_and_reset_restores_exactly(studio):
    session = studio.new_session()
    unseen = [c.id for c in studio.checkpoint.classes if not c.seen]
    target = max(unseen, key=lambda c: sample_accuracy(studio, session, c))
    before_accuracy = sample_accuracy(studio, session, target)
    before = [studio.classify_sample(i, session).scores for i in range(len(studio.samples))]
    session.edit(target, UNRELATED, name="Quarterly Tax Report")
    assert sample_accuracy(studio, session, target) < before_accuracy
    session.reset()
    after = [studio.classify_sample(i, session).scores for i in range(len(studio.samples))]
    assert after == before  # bit for bit: reset uses the checkpoint's own rows
    assert session.undo() and sample_accuracy(studio, session, target) < before_accuracy  # undo the reset


def test_added_class_is_an_unseen_candidate_at_once(studio):
    session = studio.new_session()
    class_id = session.add_class("Playing Bagpipes", ["A musician squeezes a bag to sound droning pipes."])
    assert session.class_ids[-1] == class_id and not session.seen[-1]
    prediction = studio.classify_sample(0, session, top_k=100)
    assert class_id in [s.class_id for s in prediction.zsl] and class_id in [s.class_id for s in prediction.scores]
    with pytest.raises(KnowledgeError, match="there is already a class"):
        session.add_class("playing bagpipes")
    assert len(session.class_ids) == 49  # the failed change left the session as it was


def test_import_export_round_trip_and_missing_classes(studio):
    session = studio.new_session()
    session.add_class("Playing Bagpipes")
    data = session.export_json()
    other = studio.new_session()
    assert other.import_json(json.loads(json.dumps(data))) == {"changed": [], "added": ["Playing Bagpipes"]}
    np.testing.assert_array_equal(other.class_matrix, session.class_matrix)
    del data["classes"]["ApplyLipstick"]
    with pytest.raises(KnowledgeError, match="lacks 1 of the 48 classes: ApplyLipstick"):
        studio.new_session().import_json(data)


def test_classify_features_matches_kda_evaluate(tmp_path, ucf_synth):
    from kda.cli import main

    out = tmp_path / "ck"
    assert (
        main(["train", "--root", str(ucf_synth), "--dataset", "UCF", "--epochs", "1", "--quiet", "--out", str(out)])
        == 0
    )
    assert (
        main(["evaluate", "--checkpoint", str(out), "--root", str(ucf_synth), "--scores-out", str(tmp_path / "s.npz")])
        == 0
    )
    scores = np.load(tmp_path / "s.npz")
    studio = Studio.load(out)
    expected = dict(
        zip(scores["urls"], np.argmin(scores["distances"] + scores["beta"] * scores["seen"], axis=1), strict=True)
    )
    names = list(scores["class_names"])
    samples = studio.samples
    assert len(samples) == 48 * 3
    for i, url in enumerate(samples.urls):
        top = studio.classify_features(samples.audio[i], samples.visual[i]).gzsl[0]
        assert top.class_id == names[expected[url]]


def test_similarity_and_margins_are_the_losses_own(studio):
    session = studio.new_session()
    margins = studio.margins(session, order="name")
    expected = adaptive_margins(torch.from_numpy(session.class_matrix), studio.loss.alpha, studio.loss.m0).numpy()
    np.testing.assert_allclose(margins.matrix, expected, atol=1e-6)
    similarity = studio.similarity(session, order="cluster")
    assert sorted(similarity.class_ids) == sorted(session.class_ids)
    i, j = similarity.class_ids.index("ApplyEyeMakeup"), similarity.class_ids.index("ApplyLipstick")
    assert abs(i - j) <= 2  # similar descriptions end up side by side in cluster order
    subset = studio.similarity(session, classes=["ApplyLipstick", "ApplyEyeMakeup", "Archery"])
    rows = session.class_matrix[[session.class_ids.index(c) for c in subset.class_ids]]
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    np.testing.assert_allclose(subset.matrix, unit @ unit.T, atol=1e-6)  # the cosines of those three t_c


def test_embedding_maps_place_the_query_and_are_reproducible(studio):
    query = studio.classify_sample(5)
    for method in ("tsne", "pca"):
        maps = studio.embedding_maps(method=method, query=query, seed=3)
        assert set(maps) == {"audio", "visual", "knowledge", "fused"}
        n = len(studio.samples)
        assert len(maps["audio"].coords) == n + 1 and maps["audio"].kind[-1] == "query"
        assert len(maps["fused"].coords) == n + 48 + 1
        again = studio.embedding_maps(method=method, query=query, seed=3)
        np.testing.assert_array_equal(again["fused"].coords, maps["fused"].coords)


@pytest.mark.media
def test_classify_videos_notes_and_bad_files(studio, media_files, tmp_path):
    prediction = studio.classify(media_files["mp4_h264_aac"])
    assert len(prediction.gzsl) == 5 and prediction.has_audio
    assert [n.code for n in prediction.notes if "offline random weights" in n.message] == ["offline_extractor"]
    # Each shift is how every class's distance moves when that modality is set to its training mean...
    modality, full = prediction.modality, np.array([s.distance for s in prediction.scores])
    means = [norm.mean.cpu().numpy() for norm in (studio.model.audio_norm, studio.model.visual_norm)]
    for shift, (audio, visual) in (
        (modality.audio_shift, (means[0], prediction.visual)),
        (modality.visual_shift, (prediction.audio, means[1])),
    ):
        moved = np.array([s.distance for s in studio.classify_features(audio, visual).scores])
        np.testing.assert_allclose(shift, moved - full, atol=1e-5)
    # ...and the driver is the modality whose removal moves the predicted class further (both: within 25 %).
    top = [s.class_id for s in prediction.scores].index(prediction.gzsl[0].class_id)
    rise_audio, rise_visual = modality.audio_shift[top], modality.visual_shift[top]
    if abs(rise_audio - rise_visual) <= 0.25 * max(abs(rise_audio), abs(rise_visual)):
        assert modality.driver == "both"
    else:
        assert modality.driver == ("audio" if rise_audio > rise_visual else "visual")
    silent = studio.classify(media_files["no_audio"])
    assert not silent.has_audio and [n.code for n in silent.notes if "visual-only" in n.message] == ["no_audio"]
    np.testing.assert_array_equal(silent.audio, studio.model.audio_norm.mean.numpy())
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    with pytest.raises(NotMediaError, match="notes.mp4: is not a video or audio file"):
        studio.classify(text)


def test_not_editable_without_texts_says_why(tiny_checkpoint):
    from kda.knowledge.session import NotEditableError

    session = Studio.load(tiny_checkpoint).new_session()
    assert not session.editable
    with pytest.raises(NotEditableError, match="knowledge vectors without their texts"):
        session.edit(session.class_ids[0], ["a new text"])
    assert isinstance(NotEditableError("x"), KdaError)


def test_text_encoder_of_the_demo_is_the_real_minilm(minilm):
    encoder = minilm  # loaded by its id, sentence-transformers/all-MiniLM-L6-v2
    ckpt = load_checkpoint(DEMO)
    row = ckpt.class_ids.index("ApplyLipstick")
    mean = encoder.encode(ckpt.knowledge.texts("ApplyLipstick")).mean(axis=0)
    np.testing.assert_allclose(mean / np.linalg.norm(mean), ckpt.class_matrix[row], atol=1e-6)


@pytest.mark.media
def test_rescore_follows_the_knowledge_and_keeps_the_notes_once(studio, media_files, monkeypatch):
    session = studio.new_session()
    silent = studio.classify(media_files["no_audio"], session)
    top = silent.gzsl[0].class_id
    session.edit(top, UNRELATED, name="Quarterly Tax Report")

    def forward(*args):
        raise AssertionError("a re-score must not run the network: it has the video's rho_av rows")

    monkeypatch.setattr(studio.model, "forward", forward)
    again = studio.rescore(silent, session)
    assert again.notes == silent.notes  # the no-audio note once, not twice
    assert again.scores[session.class_ids.index(top)].distance != silent.scores[session.class_ids.index(top)].distance
    session.reset()
    assert studio.rescore(silent, session).scores == silent.scores


@pytest.mark.media
def test_classifications_run_at_once_through_networks_built_once(studio, media_files, monkeypatch):
    builds = []

    class Counted(Networks):
        def __init__(self, *args, **kwargs):
            builds.append(args)
            time.sleep(0.5)  # two first calls at once would both build, without the build lock
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(extract_module, "Networks", Counted)
    fresh = Studio(studio.checkpoint, max_clips=1, max_examples=4, text_encoder=studio.builder.encoder)
    videos = [media_files["mp4_h264_aac"], media_files["mkv_mpeg4_mp3"]]
    # Each call waits, inside its extraction, for the other to be inside its own: only calls that really run
    # at the same time get past (a lock around the extraction breaks the barrier).
    barrier = threading.Barrier(len(videos), timeout=120)

    def classify(path):
        waited = []

        def progress(stage, done, total):
            if not waited:
                waited.append(barrier.wait())

        return fresh.classify(path, progress=progress)

    with ThreadPoolExecutor(len(videos)) as pool:
        together = list(pool.map(classify, videos))
    one_by_one = [fresh.classify(path) for path in videos]
    assert len(builds) == 1  # four classifications, one build of the networks
    for a, b in zip(together, one_by_one, strict=True):
        assert a.source == b.source and a.notes == b.notes
        np.testing.assert_allclose(a.visual, b.visual, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(a.audio, b.audio)
        assert [s.class_id for s in a.gzsl] == [s.class_id for s in b.gzsl]


@pytest.mark.media
def test_the_studio_scores_an_uploaded_video_and_again_after_an_edit(studio, media_files):
    session = studio.new_session()
    scores = studio.zero_shot(media_files["mp4_h264_aac"], session)
    assert scores.offline and len(scores.probabilities) == len(session.class_ids)
    assert scores.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    class_id = session.class_ids[int(np.argmin(scores.probabilities))]
    entry = session.knowledge.get(class_id)
    session.edit(class_id, [d.text if d.aspect != "visual" else "Something else entirely." for d in entry.descriptions])
    again = studio.zero_shot_again(scores.video, session)
    moved = np.flatnonzero(~np.isclose(again.cosines, scores.cosines, atol=1e-7))
    assert [session.class_ids[i] for i in moved] == [class_id]


@pytest.mark.media  # decodes a real video through the extractor
def test_classify_reports_each_stage_as_it_starts():
    fresh = Studio.load(DEMO, max_clips=2, max_examples=4)  # its extractor's networks are not built yet
    heard = []

    def progress(stage: str, done: int, total: int) -> None:
        heard.append((stage, done, total, fresh.extractor.built is not None))

    video = ROOT / "assets" / "examples" / "pattern_tone_440.mp4"
    fresh.classify(video, progress=progress)
    assert heard[0] == ("networks", 0, 1, False)  # said before the seconds of building start
    stages = [h[:3] for h in heard[1:]]
    assert stages[0] == ("visual", 0, 2) and stages[-3:] == [("visual", 2, 2), ("audio", 0, 1), ("audio", 1, 1)]
    heard.clear()
    fresh.classify(video, progress=progress)
    assert [h[0] for h in heard if h[0] == "networks"] == []  # built once: the next video has no such stage
