"""The Knowledge tab's A/B panel: the checkpoint's test split under the visitor's knowledge against under the
checkpoint's own (S / U / HM / ZSL at the checkpoint's beta), the per-class accuracy of the classes that
changed or that test videos moved between, and those moves. Drawn when the page opens and after every change
of the knowledge; `/knowledge_ab` returns the same comparison as JSON (`kda.knowledge_ab.Comparison`), which
`kda evaluate --knowledge` reproduces for an exported file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from demo.guards import user_errors
from demo.state import Visitor
from kda.knowledge_ab import Comparison
from kda.studio import Studio

METRICS = (("S", "seen"), ("U", "unseen"), ("HM", "hm"), ("ZSL", "zsl"))
# Short headers, so that every column fits a phone's width; the tables' labels say what "checkpoint" means.
METRIC_COLUMNS = ["metric", "checkpoint", "yours", "change"]
CLASS_COLUMNS = ["class", "videos", "checkpoint", "yours", "change"]
MOVE_COLUMNS = ["videos", "of class", "were predicted", "now predicted"]
MOVES_SHOWN = 20  # the largest moves in the table; the JSON has them all


@dataclass
class ABPanel:
    draw: Callable  # module-level `draw`, taking (studio, visitor)
    outputs: list


def signed(x: float | None) -> str:
    return "" if x is None else f"{x:+.2f}"


def percent(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def metrics_rows(comparison: Comparison) -> list[list[str]]:
    before, after = comparison.checkpoint.to_dict(), comparison.edited.to_dict()
    return [[label, percent(before[k]), percent(after[k]), signed(after[k] - before[k])] for label, k in METRICS]


def class_rows(comparison: Comparison) -> list[list]:
    return [
        [
            f"{c.name} ({'seen' if c.seen else 'unseen'}{', edited' if c.edited else ''})",
            c.videos,
            percent(c.checkpoint, 0),  # whole percents: a class has tens of test videos, and a phone has no room
            percent(c.now, 0),
            f"{c.change:+.0f}" if c.videos else "",
        ]
        for c in comparison.classes
    ]


def move_rows(comparison: Comparison, names: dict[str, str]) -> list[list]:
    return [[m.videos, names[m.truth], names[m.was], names[m.now]] for m in comparison.moves[:MOVES_SHOWN]]


def provenance_note(studio: Studio) -> str:
    """What the test split's numbers mean for this checkpoint."""
    features = studio.checkpoint.provenance.get("features", {})
    if features.get("source") == "synthetic":
        return (
            " This checkpoint's test videos are synthetic features generated from its own knowledge, so the numbers "
            "are meaningful here too: a misleading edit visibly costs accuracy."
        )
    return ""


def summary(studio: Studio, comparison: Comparison) -> str:
    before, after = comparison.checkpoint, comparison.edited
    edited = sum(c.edited for c in comparison.classes)
    moved = sum(m.videos for m in comparison.moves)
    headline = (
        f"**HM {before.hm:.2f} → {after.hm:.2f} ({after.hm - before.hm:+.2f})** on the checkpoint's test split "
        f"({comparison.videos} videos), beta {before.beta:.3g} as chosen on validation."
    )
    if not edited and not moved:
        change = " Your knowledge is the checkpoint's so far: edit a class to see what it does to the benchmark."
    else:
        change = f" {edited} class(es) edited; {moved} test video(s) changed their prediction."
    return headline + change + provenance_note(studio)


@user_errors
def draw(studio: Studio, visitor: Visitor | None):
    """The checkpoint's test split under your knowledge against under the checkpoint's own: test S / U / HM / ZSL,
    per-class accuracy of the classes that changed or that test videos moved between, and the moves."""
    session = visitor.session if visitor is not None else studio.base
    comparison = studio.compare_knowledge(session)
    names = dict(zip(session.class_ids, session.names, strict=True))
    return (
        summary(studio, comparison),
        metrics_rows(comparison),
        class_rows(comparison),
        move_rows(comparison, names),
        comparison.to_json(),
    )


def build(studio: Studio) -> ABPanel | None:
    """The panel's components (None, and a note, for a checkpoint without a test split)."""
    if studio.ab is None:
        gr.Markdown(
            "Knowledge A/B on the benchmark is off: this checkpoint carries no test split (checkpoints made by "
            "`kda train` or `kda reproduce` carry one).",
            elem_id="ab-off",
        )
        return None
    with gr.Accordion(
        "Knowledge A/B on the benchmark: your knowledge against the checkpoint's", elem_id="knowledge-ab"
    ):
        headline = gr.Markdown(label="A/B summary", elem_id="ab-summary")
        metrics = gr.Dataframe(
            headers=METRIC_COLUMNS,
            interactive=False,
            column_widths=["25%", "27%", "24%", "24%"],
            label="Test metrics (%) under the checkpoint's knowledge and under yours: GZSL seen (S), unseen (U) "
            "accuracy and their harmonic mean (HM); ZSL, unseen videos among unseen classes",
        )
        classes = gr.Dataframe(
            headers=CLASS_COLUMNS,
            interactive=False,
            wrap=True,
            column_widths=["34%", "14%", "20%", "16%", "16%"],
            label="GZSL accuracy (%) of each class's test videos: the classes you edited, and the classes they "
            "take videos from or lose them to",
        )
        moves = gr.Dataframe(
            headers=MOVE_COLUMNS,
            interactive=False,
            wrap=True,
            column_widths=["13%", "29%", "29%", "29%"],
            label=f"Test videos whose prediction moved (the {MOVES_SHOWN} largest moves; the JSON has them all)",
        )
        with gr.Accordion("As JSON (the /knowledge_ab endpoint, and `kda evaluate --knowledge`)", open=False):
            as_json = gr.JSON(label="Knowledge A/B")
    return ABPanel(draw, [headline, metrics, classes, moves, as_json])
