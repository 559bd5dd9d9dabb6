"""The shipped knowledge files: one per benchmark class set, every class bound by name, three descriptions."""

from pathlib import Path

import pytest

from kda.benchmark import builtin_classes
from kda.knowledge import ASPECTS, load_knowledge
from kda.names import class_key

ASSETS = Path(__file__).resolve().parents[3] / "assets" / "knowledge"
FILES = [
    ("UCF", "ucf.json", "UCF-GZSL", 101),
    ("ActivityNet", "activitynet.json", "ActivityNet-GZSL", 200),
    ("VGGSound", "vggsound.json", "VGGSound-GZSL", 309),
]


@pytest.mark.parametrize(("dataset", "file", "class_set", "count"), FILES)
def test_asset_covers_its_benchmark_by_name(dataset, file, class_set, count):
    knowledge = load_knowledge(ASSETS / file)
    classes = builtin_classes(dataset)
    assert knowledge.class_set == class_set and len(knowledge) == len(classes) == count
    ids = knowledge.align_optional([(c.id, c.name) for c in classes])  # every benchmark class by name
    assert None not in ids and sorted(ids) == sorted(knowledge.class_ids)  # and no unknown one
    for info, class_id in zip(classes, ids, strict=True):
        entry = knowledge.get(class_id)
        assert class_key(class_id) == class_key(info.id) and entry.name == info.name
        assert [d.aspect for d in entry.descriptions] == list(ASPECTS)
        assert all(len(d.text.split()) >= 5 for d in entry.descriptions), class_id
        assert len({d.text for d in entry.descriptions}) == 3, class_id


@pytest.mark.parametrize(("dataset", "file", "class_set", "count"), FILES)
def test_asset_says_how_it_was_written(dataset, file, class_set, count):
    provenance = load_knowledge(ASSETS / file).provenance
    assert provenance["author"].startswith("Claude (Anthropic)")
    assert "three KDA questions" in provenance["method"] and "reviewed" in provenance["method"]
    assert set(provenance["prompts"]) == set(ASPECTS) and provenance["created"] == "2026-11-25"


def test_descriptions_are_not_shared_across_classes():
    """A row-order mix-up (the released VGGSound files' bug) would show as the same text under two classes."""
    for _, file, _, _ in FILES:
        knowledge = load_knowledge(ASSETS / file)
        texts = [d.text for c in knowledge.class_ids for d in knowledge.get(c).descriptions]
        assert len(texts) == len(set(texts))


def test_descriptions_mention_their_class():
    """Binding by name, spot-checked: a class's introduction names what the class names (or a synonym)."""
    knowledge = load_knowledge(ASSETS / "vggsound.json")
    for class_id, word in [
        ("playing french horn", "horn"),
        ("cat growling", "growl"),
        ("slot machine", "slot"),
        ("lathe spinning", "lathe"),
    ]:
        assert word in knowledge.texts(class_id)[1].lower()
    ucf = load_knowledge(ASSETS / "ucf.json")
    assert "lipstick" in ucf.texts("ApplyLipstick")[1].lower() and "eye" in ucf.texts("ApplyEyeMakeup")[1].lower()
