"""One visitor's state without Gradio (`demo/state.py`): the bundled demo checkpoint through `Studio`, a
`Visitor` that starts, classifies, is re-scored after an edit, caches its embedding maps and tells which tab
drew from an older state; and the helpers the tabs share (class choices, the prediction as JSON)."""

import json
from pathlib import Path

import numpy as np
import pytest

from demo.state import MAP_CACHE, Visitor, class_choices, prediction_dict

DEMO = Path(__file__).resolve().parents[2] / "checkpoints" / "demo-ucf-cls"
UNRELATED = [
    "A spreadsheet of quarterly tax figures for a small accounting firm.",
    "Rows of numbers in grey cells on a computer screen.",
    "The quiet hum of an office air conditioner.",
]

pytestmark = pytest.mark.skipif(not DEMO.is_dir(), reason="no demo checkpoint: run `make checkpoint`")


def classified(studio, index: int = 0, top_k: int = 3) -> Visitor:
    visitor = Visitor.start(studio)
    visitor.classified(studio.classify_sample(index, visitor.session, top_k=top_k), top_k)
    return visitor


def distances(prediction) -> dict[str, float]:
    return {s.class_id: s.distance for s in prediction.scores}


def test_start_keeps_a_visitor_or_makes_one_with_the_checkpoints_own_knowledge(studio):
    visitor = Visitor.start(studio)
    assert Visitor.start(studio, visitor) is visitor
    assert visitor.prediction is None and visitor.session.version == 0 and not visitor.maps
    assert visitor.session.export_json() == studio.base.export_json()
    np.testing.assert_array_equal(visitor.session.class_matrix, studio.checkpoint.class_matrix)
    other = Visitor.start(studio)
    visitor.session.edit("ApplyLipstick", UNRELATED)
    assert other.session.export_json() == studio.base.export_json()  # one visitor's edit is theirs alone


def test_classified_keeps_the_prediction_and_its_top_k(studio):
    visitor = Visitor.start(studio)
    prediction = studio.classify_sample(5, visitor.session, top_k=3)
    assert visitor.classified(prediction, 3) is prediction
    assert visitor.prediction is prediction and visitor.top_k == 3


def test_rescore_after_an_edit_moves_the_edited_class_and_keeps_top_k(studio):
    assert Visitor.start(studio).rescore(studio) is None  # nothing classified: nothing to re-score
    visitor = classified(studio, top_k=3)
    before = visitor.prediction
    target = before.gzsl[0].class_id
    visitor.session.edit(target, UNRELATED, name="Quarterly Tax Report")
    after = visitor.rescore(studio)
    assert visitor.prediction is after and after is not before
    moved = {c for c, d in distances(after).items() if not np.isclose(d, distances(before)[c], atol=1e-6)}
    assert moved == {target}  # only the edited class's t_c changed
    assert len(after.gzsl) == 3 and after.source == before.source
    # the same prediction as classifying the video again against the edited knowledge
    again = studio.classify_sample(0, visitor.session, top_k=3)
    assert distances(after) == pytest.approx(distances(again), abs=1e-6)
    assert [s.class_id for s in after.gzsl] == [s.class_id for s in again.gzsl]


def test_embedding_maps_are_cached_per_knowledge_version_and_query_and_bounded(studio):
    visitor = Visitor.start(studio)
    first = visitor.embedding_maps(studio, "pca")
    assert set(first) == {"audio", "visual", "fused", "knowledge"}
    assert visitor.embedding_maps(studio, "pca") is first  # cached: the same maps, not computed again
    visitor.session.edit("ApplyLipstick", UNRELATED)
    edited = visitor.embedding_maps(studio, "pca")
    assert edited is not first and not np.allclose(edited["knowledge"].coords, first["knowledge"].coords)
    visitor.classified(studio.classify_sample(0, visitor.session), 5)
    with_query = visitor.embedding_maps(studio, "pca")
    assert with_query is not edited and "query" in with_query["fused"].kind
    visitor.rescore(studio)  # the same video re-scored: the same query, so the same maps
    assert visitor.embedding_maps(studio, "pca") is with_query
    keys = list(visitor.maps)
    for _ in range(MAP_CACHE):  # each reset of one class is a new knowledge version
        visitor.session.reset("ApplyLipstick")
        visitor.embedding_maps(studio, "pca")
    assert len(visitor.maps) == MAP_CACHE
    assert not set(keys) & set(visitor.maps)  # the oldest went first
    version = visitor.session.version
    assert [key[1] for key in visitor.maps] == list(range(version - MAP_CACHE + 1, version + 1))


def test_a_tab_is_stale_until_drawn_and_again_after_a_change_or_a_new_prediction(studio):
    visitor = Visitor.start(studio)
    assert visitor.stale("heatmaps")  # never drawn
    visitor.drew("heatmaps", visitor.stamp)
    assert not visitor.stale("heatmaps") and visitor.stale("embeddings")
    visitor.session.edit("ApplyLipstick", UNRELATED)
    assert visitor.stale("heatmaps")  # drew from older knowledge
    visitor.drew("heatmaps", visitor.stamp)
    visitor.classified(studio.classify_sample(0, visitor.session), 5)
    assert visitor.stale("heatmaps")  # drew before this prediction (its query point, its top-k)
    visitor.drew("heatmaps", visitor.stamp)
    visitor.top_k = 2
    visitor.rescore(studio)
    assert visitor.stale("heatmaps")  # a new top-k
    stamp = visitor.stamp  # read before drawing; a change lands while the tab draws
    visitor.session.reset()
    visitor.drew("heatmaps", stamp)
    assert visitor.stale("heatmaps")
    visitor.drew("heatmaps", visitor.stamp)
    assert visitor.session.undo() and visitor.stale("heatmaps")  # undoing the reset is a change too


def test_class_choices_label_every_class_seen_or_unseen_and_follow_added_classes(studio):
    visitor = Visitor.start(studio)
    choices = class_choices(visitor)
    assert [c for _, c in choices] == visitor.session.class_ids
    by_id = {c.id: c for c in studio.checkpoint.classes}
    assert all(label == f"{by_id[c].name} ({'seen' if by_id[c].seen else 'unseen'})" for label, c in choices)
    assert sum(label.endswith("(unseen)") for label, _ in choices) == 6
    class_id = visitor.session.add_class("Playing Bagpipes")
    assert class_choices(visitor)[-1] == ("Playing Bagpipes (unseen)", class_id)


def test_prediction_dict_is_the_api_shape_and_plain_json(studio):
    assert prediction_dict(None) is None
    prediction = classified(studio, index=7, top_k=4).prediction
    data = json.loads(json.dumps(prediction_dict(prediction)))  # plain JSON all the way down
    assert list(data) == ["source", "notes", "has_audio", "beta", "gzsl", "zsl", "scores", "modality"]
    assert list(data["modality"]) == ["driver", "summary", "visual_only", "audio_only"]
    score = ["class_id", "name", "seen", "distance", "score"]
    assert all(list(s) == score for key in ("gzsl", "zsl", "scores") for s in data[key])
    assert data["source"] == prediction.source and data["notes"] == [
        {"code": n.code, "message": n.message} for n in prediction.notes
    ]
    assert data["has_audio"] == prediction.has_audio and data["beta"] == pytest.approx(prediction.beta)
    assert [s["class_id"] for s in data["gzsl"]] == [s.class_id for s in prediction.gzsl] and len(data["gzsl"]) == 4
    assert [s["class_id"] for s in data["zsl"]] == [s.class_id for s in prediction.zsl]
    assert all(not s["seen"] for s in data["zsl"])
    assert [s["distance"] for s in data["scores"]] == pytest.approx([s.distance for s in prediction.scores])
    assert data["modality"]["driver"] == prediction.modality.driver
    assert data["modality"]["visual_only"]["class_id"] == prediction.modality.without_audio.class_id
    assert data["modality"]["audio_only"]["class_id"] == prediction.modality.without_visual.class_id
