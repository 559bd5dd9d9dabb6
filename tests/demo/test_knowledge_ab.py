"""The Knowledge tab's A/B panel without a server: its handler on the bundled demo checkpoint (the tables say
what `Studio.compare_knowledge` says), and the note that replaces it for a checkpoint without a test split."""

from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest

from demo import knowledge_ab
from demo.state import Visitor
from kda.checkpoint import load_checkpoint
from kda.studio import Studio

DEMO = Path(__file__).resolve().parents[2] / "checkpoints" / "demo-ucf-cls"
MISLEADING = (
    "Boiling pasta in a big pot on a kitchen stove.",
    "Steam rises while a cook stirs noodles with a wooden spoon.",
    "Bubbling water and the clink of a spoon against metal.",
)
pytestmark = pytest.mark.skipif(not DEMO.is_dir(), reason="no demo checkpoint: run `make checkpoint`")


@pytest.fixture(scope="module")
def studio():
    return Studio.load(DEMO)


def test_the_panel_shows_the_checkpoints_metrics_then_what_an_edit_costs(studio):
    recorded = studio.checkpoint.metrics["test"]
    summary, metrics, classes, moves, as_json = knowledge_ab.draw(studio, None)  # a visitor before any change
    assert metrics[2] == ["HM", f"{recorded['hm']:.2f}", f"{recorded['hm']:.2f}", "+0.00"]
    assert classes == [] and moves == [] and "is the checkpoint's so far" in summary
    assert "generated from its own knowledge" in summary  # the demo's synthetic split: its numbers mean something
    assert as_json["checkpoint"]["hm"] == recorded["hm"] and as_json["edited"] == as_json["checkpoint"]

    visitor = Visitor.start(studio)
    unseen = [c.id for c in studio.checkpoint.classes if not c.seen]
    target = unseen[0]
    visitor.session.edit(target, list(MISLEADING), name="Boiling Pasta")
    summary, metrics, classes, moves, as_json = knowledge_ab.draw(studio, visitor)
    comparison = studio.compare_knowledge(visitor.session)
    assert as_json == comparison.to_json()
    assert comparison.edited.unseen < comparison.checkpoint.unseen  # a misleading edit visibly costs accuracy
    assert metrics[1] == [
        "U",
        f"{comparison.checkpoint.unseen:.2f}",
        f"{comparison.edited.unseen:.2f}",
        f"{comparison.edited.unseen - comparison.checkpoint.unseen:+.2f}",
    ]
    first = comparison.classes[0]
    assert first.class_id == target and classes[0][:2] == ["Boiling Pasta (unseen, edited)", first.videos]
    assert len(classes) == len(comparison.classes) > 1  # the classes its videos went to are listed too
    assert sum(row[0] for row in moves) == sum(m.videos for m in comparison.moves[: knowledge_ab.MOVES_SHOWN])
    assert any("Boiling Pasta" in row for row in moves)  # names as the visitor sees them, the edited name included
    assert f"HM {comparison.checkpoint.hm:.2f} → {comparison.edited.hm:.2f}" in summary
    assert "1 class(es) edited" in summary


def test_a_checkpoint_without_a_test_split_gets_a_note_instead():
    plain = Studio(replace(load_checkpoint(DEMO), test_split=None))
    with gr.Blocks() as page:
        assert knowledge_ab.build(plain) is None
    notes = [b.value for b in page.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("carries no test split" in note for note in notes)
