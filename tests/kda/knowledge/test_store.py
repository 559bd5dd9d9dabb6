"""The knowledge file format: round trips, validation messages, matching by name."""

import json

import pytest

from kda.knowledge import (
    ASPECTS,
    FORMAT,
    ClassKnowledge,
    Description,
    Knowledge,
    KnowledgeError,
    load_knowledge,
    save_knowledge,
)
from kda.knowledge.store import parse_knowledge, with_file_provenance


def sample() -> dict:
    return {
        "format": FORMAT,
        "class_set": "UCF-GZSL",
        "provenance": {
            "author": "someone",
            "created": "2026-11-25",
            "prompts": {"visual": "What does {name} look like?"},
        },
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


def write(tmp_path, data, name="k.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_round_trip_keeps_everything(tmp_path):
    knowledge = load_knowledge(write(tmp_path, sample()))
    save_knowledge(knowledge, tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == sample()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.json", "k.json"]  # no temporary file left behind


def test_texts_are_name_then_descriptions(tmp_path):
    knowledge = load_knowledge(write(tmp_path, sample()))
    assert knowledge.class_ids == ["ApplyEyeMakeup", "Archery"]
    assert knowledge.texts("ApplyEyeMakeup") == [
        "Apply Eye Makeup",
        "Putting makeup on the eyes.",
        "A brush near an eyelid.",
        "Quiet talking.",
    ]
    assert knowledge.get("ApplyEyeMakeup").is_complete() and not knowledge.get("Archery").is_complete()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="kda-knowledge/9"), "'format' is 'kda-knowledge/9'"),
        (lambda d: d.update(extra=1), "unknown keys 'extra'"),
        (lambda d: d["classes"]["Archery"].update(descripton=[]), "unknown keys 'descripton'"),
        (lambda d: d["classes"]["Archery"]["descriptions"][0].update(text="  "), "'text' must be a non-empty string"),
        (lambda d: d["classes"]["Archery"].pop("name"), "'name' must be a non-empty string"),
        (lambda d: d["classes"].update(archery={"name": "Bow shooting"}), "duplicates class 'Archery'"),
        (lambda d: d["classes"].update(Other={"name": "apply eye makeup"}), "duplicates class 'ApplyEyeMakeup'"),
        (lambda d: d.update(classes=[]), "'classes' must be an object"),
    ],
)
def test_malformed_files_are_named_errors(tmp_path, change, message):
    data = sample()
    change(data)
    with pytest.raises(KnowledgeError, match=message) as e:
        load_knowledge(write(tmp_path, data))
    assert "k.json" in str(e.value)


def test_invalid_json_and_missing_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": ')
    with pytest.raises(KnowledgeError, match=r"is not valid JSON: .* at line 1, column 12"):
        load_knowledge(path)
    with pytest.raises(KnowledgeError, match="does not exist"):
        load_knowledge(tmp_path / "nope.json")


def test_find_matches_ids_and_readable_names_case_insensitively(tmp_path):
    knowledge = load_knowledge(write(tmp_path, sample()))
    assert knowledge.find("applyeyemakeup") == "ApplyEyeMakeup"
    assert knowledge.find("Apply eye makeup") == "ApplyEyeMakeup"
    assert knowledge.find("Bowling") is None
    with pytest.raises(KnowledgeError, match="did you mean 'Archery'"):
        knowledge.resolve("Archey")


def test_saved_files_get_ordinary_permissions(tmp_path):
    path = save_knowledge(Knowledge("custom"), tmp_path / "new.json")
    assert path.stat().st_mode & 0o644 == 0o644  # readable by others, as a shipped asset must be


def test_new_knowledge_saved_and_loaded(tmp_path):
    entry = ClassKnowledge("Dog Barking", tuple(Description(a, f"About {a}.") for a in ASPECTS))
    knowledge = Knowledge("custom", {"dog barking": entry}, {"author": "me"})
    path = save_knowledge(knowledge, tmp_path / "sub" / "new.json")
    again = load_knowledge(path)
    assert again.get("dog barking") == entry and again.provenance == {"author": "me"}


def test_with_file_provenance_drops_only_repeats():
    provenance = {"author": "m", "created": "2026-01-01", "prompts": {"visual": "Q {name}"}}
    d = with_file_provenance(Description("visual", "t", "m", "2026-01-02", "Q {name}"), provenance)
    assert (d.author, d.created, d.prompt) == (None, "2026-01-02", None)


def test_parse_rejects_non_objects():
    with pytest.raises(KnowledgeError, match="must be a JSON object"):
        parse_knowledge([1, 2])


def test_json_errors_name_line_and_column_and_deep_nesting_is_named(tmp_path):
    from kda.knowledge.store import read_json

    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "a": 1,\n  x}')
    with pytest.raises(
        KnowledgeError, match=r"broken.json is not valid JSON: Expecting property name .* line 3, column 3$"
    ):
        read_json(broken)
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(KnowledgeError, match="nested.json is nested too deeply to read"):
        read_json(nested)


def test_an_import_over_its_byte_cap_is_refused_unread(tmp_path):
    from kda.knowledge.store import read_json

    path = tmp_path / "big.json"
    path.write_text(json.dumps({"text": "x" * 3000}))
    with pytest.raises(KnowledgeError, match=r"^upload.json is over the 2 KB limit of a knowledge import$"):
        read_json(path, max_bytes=2048, name="upload.json")
    assert read_json(path, max_bytes=4096) == {"text": "x" * 3000}


def test_caps_refuse_new_long_texts_and_state_the_cap():
    from kda.knowledge.store import Caps, check_caps

    caps = Caps(name_chars=10, description_chars=20)
    with pytest.raises(
        KnowledgeError, match=r"^the class name 'A name too long' is 15 characters long; .* at most 10$"
    ):
        check_caps(ClassKnowledge("A name too long"), caps)
    long = ClassKnowledge("Short", (Description("visual", "v" * 21),))
    with pytest.raises(
        KnowledgeError, match=r"the visual description of 'Short' is 21 characters long; .* at most 20$"
    ):
        check_caps(long, caps)
    check_caps(long, caps, before=long)  # what a class already had (a checkpoint's own text) is not refused
