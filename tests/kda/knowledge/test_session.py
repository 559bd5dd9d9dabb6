"""A person's knowledge session: the one set of edit verbs, what each does to the texts and to the class matrix,
reset back to the checkpoint's knowledge, and rows built in the checkpoint's own form."""

import datetime
import json

import numpy as np
import pytest

from kda.knowledge import TINY_TEXT_ENCODER, ClassMatrixBuilder, KnowledgeError, load_text_encoder, parse_knowledge
from kda.knowledge.class_matrix import RAW_MEAN, UNIT, encode_knowledge
from kda.knowledge.session import KnowledgeSession

DOCUMENT = {
    "format": "kda-knowledge/1",
    "class_set": "test",
    "provenance": {"author": "someone", "created": "2026-11-25"},
    "classes": {
        "ApplyEyeMakeup": {
            "name": "Apply Eye Makeup",
            "descriptions": [
                {"aspect": "introduction", "text": "Putting makeup on the eyes."},
                {"aspect": "visual", "text": "A brush near an eyelid."},
                {"aspect": "auditory", "text": "Quiet talking.", "author": "editor", "created": "2026-11-26"},
            ],
        },
        "Archery": {"name": "Archery", "descriptions": [{"aspect": "visual", "text": "A bow and a target."}]},
    },
}


@pytest.fixture(scope="module")
def encoder():
    return load_text_encoder(TINY_TEXT_ENCODER)


def session_of(encoder, form: str = UNIT) -> KnowledgeSession:
    """A session as a checkpoint of `form` would start it: rows built by training's own code."""
    knowledge = parse_knowledge(DOCUMENT)
    matrix = encode_knowledge(knowledge, encoder, form)
    builder = ClassMatrixBuilder(encoder, form)
    assert builder.seed(matrix.text_vectors)
    return KnowledgeSession(knowledge, matrix.vectors, [True, False], builder)


def test_edit_keeps_the_provenance_of_unchanged_texts(encoder):
    session = session_of(encoder)
    old = session.entry("ApplyEyeMakeup").descriptions
    entry = session.edit("apply eye makeup", [old[0].text, "Mascara on lashes.", old[2].text, "An extra note."])
    assert entry.descriptions[0] is old[0] and entry.descriptions[2] is old[2]
    assert entry.descriptions[1].aspect == "visual" and entry.descriptions[1].author == "user"
    assert entry.descriptions[1].created == datetime.date.today().isoformat()
    assert entry.descriptions[3].aspect == "other"
    assert session.knowledge.texts("ApplyEyeMakeup")[2] == "Mascara on lashes."
    assert session.last_encoded == 2 and session.changed() == ["ApplyEyeMakeup"]


@pytest.mark.parametrize("form", [UNIT, RAW_MEAN])
def test_an_edited_row_is_built_like_the_checkpoints_rows(encoder, form):
    session = session_of(encoder, form)
    texts = ["A person paints the eyelids.", "Brushes and powder.", "Soft music."]
    session.edit("ApplyEyeMakeup", texts)
    vectors = encoder.encode(["Apply Eye Makeup", *texts], normalize=form == UNIT)
    mean = vectors.mean(axis=0)
    expected = mean / np.linalg.norm(mean) if form == UNIT else mean
    np.testing.assert_allclose(session.class_matrix[0], expected, atol=1e-5)
    # the other row keeps the checkpoint's scale: a raw-mean matrix is never half unit rows
    norms = np.linalg.norm(session.class_matrix, axis=1)
    assert norms == pytest.approx([1.0, 1.0], abs=1e-4) if form == UNIT else not np.allclose(norms, 1.0, atol=1e-2)


def test_reset_returns_the_checkpoints_texts_and_rows_exactly(encoder):
    session = session_of(encoder)
    base = session.class_matrix.copy()
    session.edit("Archery", ["A bow, an arrow and a straw target."])
    added = session.add_class("Playing Theremin", ["An electronic instrument played without touch."])
    assert added == "Playing Theremin" and session.changed() == ["Archery", "Playing Theremin"]
    assert session.seen.tolist() == [True, False, False]  # a new class is an unseen candidate at once
    session.reset("archery")
    assert session.changed() == ["Playing Theremin"]
    np.testing.assert_array_equal(session.class_matrix[:2], base)
    with pytest.raises(KnowledgeError, match="was added in this session"):
        session.reset("Playing Theremin")
    session.reset()
    assert session.class_ids == ["ApplyEyeMakeup", "Archery"] and session.changed() == []
    np.testing.assert_array_equal(session.class_matrix, base)
    assert session.undo() and session.class_ids == ["ApplyEyeMakeup", "Archery", "Playing Theremin"]


def test_add_class_rejects_taken_and_empty_names_and_changes_nothing(encoder):
    session = session_of(encoder)
    with pytest.raises(KnowledgeError, match=r"^there is already a class 'Apply Eye Makeup' \(id 'ApplyEyeMakeup'\)"):
        session.add_class("apply eye makeup")
    with pytest.raises(KnowledgeError, match="non-empty name"):
        session.add_class("  ")
    assert session.version == 0 and session.class_ids == ["ApplyEyeMakeup", "Archery"]


def test_sessions_are_independent(encoder):
    knowledge = parse_knowledge(DOCUMENT)
    matrix = encode_knowledge(knowledge, encoder)
    builder = ClassMatrixBuilder(encoder)
    mine, yours = (KnowledgeSession(knowledge, matrix.vectors, [True, False], builder) for _ in range(2))
    mine.edit("Archery", ["Changed in my session only."])
    assert yours.knowledge.texts("Archery")[1] == "A bow and a target." and yours.changed() == []
    assert knowledge.texts("Archery")[1] == "A bow and a target."
    np.testing.assert_array_equal(yours.class_matrix, matrix.vectors)


def test_what_a_person_types_is_capped_and_a_refusal_changes_nothing(encoder, tmp_path):
    from kda.knowledge.store import Caps

    session = session_of(encoder)
    session.caps = Caps(name_chars=100, description_chars=2000, import_bytes=4096, added_classes=1)
    with pytest.raises(KnowledgeError, match="is 101 characters long; a name may have at most 100"):
        session.edit("Archery", ["A bow."], name="N" * 101)
    with pytest.raises(KnowledgeError, match="is 2,001 characters long; a description may have at most 2,000"):
        session.edit("Archery", ["d" * 2001])
    with pytest.raises(KnowledgeError, match="a name may have at most 100"):
        session.add_class("N" * 101)
    session.add_class("Playing Theremin")
    with pytest.raises(KnowledgeError, match="a session may add at most 1 classes to the checkpoint's"):
        session.add_class("Playing Banjo")
    big = tmp_path / "mine.json"
    big.write_text(json.dumps({**DOCUMENT, "provenance": {"note": "x" * 5000}}))
    with pytest.raises(KnowledgeError, match=r"^mine.json is over the 4 KB limit of a knowledge import$"):
        session.import_file(big)
    assert session.version == 1 and session.class_ids == ["ApplyEyeMakeup", "Archery", "Playing Theremin"]
    assert session.entry("Archery") == parse_knowledge(DOCUMENT).classes["Archery"]


def test_a_change_reports_the_texts_it_wrote_whatever_the_shared_cache_held(encoder):
    first, second = session_of(encoder), session_of(encoder)
    second.builder = first.builder  # two visitors of one studio share its builder and its text cache
    first.edit("Archery", ["The same words typed by two people."])
    second.edit("Archery", ["The same words typed by two people."])
    assert (first.last_encoded, first.last_changed) == (1, 1)
    assert (second.last_encoded, second.last_changed) == (0, 1)  # the cache saved the work; the edit is the same
    assert second.undo() and second.last_changed == 1  # the checkpoint's description is back


def test_a_duplicate_name_is_said_in_the_persons_words(encoder):
    session = session_of(encoder)
    session.knowledge.source = "checkpoints/x/config.json 'knowledge'"  # where a checkpoint's knowledge came from
    session = KnowledgeSession(session.knowledge, session.class_matrix, [True, False], session.builder)
    with pytest.raises(
        KnowledgeError, match=r"^'Apply Eye Makeup' is already the name of class 'ApplyEyeMakeup'; pick"
    ):
        session.edit("Archery", ["A bow."], name="Apply Eye Makeup")


def test_saved_edits_start_a_new_session_with_the_same_knowledge_and_rows(encoder):
    mine = session_of(encoder)
    assert mine.edits_json() is None  # nothing to keep while the knowledge is the checkpoint's
    mine.edit("Archery", ["An arrow in flight."], name="Target Archery")
    added = mine.add_class("Playing Theremin", ["Hands waving near an antenna."])
    saved = json.loads(json.dumps(mine.edits_json()))  # what a browser keeps: JSON, only what changed
    assert list(saved["classes"]) == ["Archery", added]

    again = session_of(encoder)
    assert again.restore_edits(saved) == ["Archery", added]
    assert again.knowledge.classes == mine.knowledge.classes and again.class_ids == mine.class_ids
    # the same texts, encoded in other batches (float rounding differs by batch)
    np.testing.assert_allclose(again.class_matrix, mine.class_matrix, atol=1e-6)
    assert list(again.seen) == [True, False, False]
    assert not again.undo()  # a restored session starts there: nothing to take back


def test_saved_edits_that_do_not_fit_change_nothing_and_say_why(encoder):
    from kda.knowledge.store import Caps

    session = session_of(encoder)
    with pytest.raises(KnowledgeError, match="saved edits"):
        session.restore_edits({"format": "kda-knowledge/1", "class_set": "test", "classes": {"Archery": {}}})
    session.caps = Caps(name_chars=10)
    saved = {**DOCUMENT, "classes": {"Archery": {"name": "A name far over ten characters", "descriptions": []}}}
    with pytest.raises(KnowledgeError, match="at most 10"):
        session.restore_edits(saved)
    assert session.changed() == [] and session.version == 0
