"""Embeddings tab: t-SNE or PCA maps of the reference sample's audio inputs, visual inputs, fused rho_av, and
of the knowledge t_c, with the visitor's last video highlighted; the 2-D coordinates downloadable as CSV."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from demo import figures
from demo.guards import bind, user_errors
from demo.state import Visitor, class_choices
from kda.analysis import EmbeddingMap
from kda.studio import Studio

MAPS = ("audio", "visual", "fused", "knowledge")  # the keys of studio.embedding_maps, in display order
METHODS = [("t-SNE", "tsne"), ("PCA", "pca")]
CSV_DIR = Path(tempfile.gettempdir()) / "kda-studio-maps"


def write_csv(maps: dict[str, EmbeddingMap], method: str) -> str:
    """All four maps in one CSV (its `set` column names the map); the file name follows the content, so a
    map drawn again reuses its file."""
    tables = [maps[key].to_csv().strip().splitlines() for key in MAPS]
    text = "\n".join([tables[0][0], *(line for table in tables for line in table[1:])]) + "\n"
    CSV_DIR.mkdir(exist_ok=True)
    path = CSV_DIR / f"kda-{method}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.csv"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return str(path)


def counts(maps: dict[str, EmbeddingMap]) -> str:
    parts = []
    for key in MAPS:
        m = maps[key]
        sub = f" (subsampled from {m.total} for speed)" if m.shown < m.total else ""
        parts.append(f"{key}: {m.shown} points{sub}")
    return "**Points per map:** " + "; ".join(parts) + ". Hover a point for its class."


@dataclass
class EmbeddingsTab:
    draw: Callable  # module-level `draw_tab`, taking (studio, visitor, method, highlight)
    inputs: list  # the state first, then the tab's own controls
    outputs: list


def highlighted(visitor: Visitor, highlight: str | None) -> str | None:
    """The class id to highlight (`highlight` an id or a name of the visitor's knowledge), or None for none."""
    return visitor.session.knowledge.resolve(highlight) if highlight else None


@user_errors
def draw(studio: Studio, visitor: Visitor | None, method: str, highlight: str | None = None, progress=gr.Progress()):  # noqa: B008 (how Gradio injects a tracker)
    """Four 2-D maps ("tsne" or "pca") of audio, visual, fused and knowledge embeddings, and their CSV;
    `highlight` (a class id or name, or empty) draws that class large and every other one faint."""
    if method not in dict(METHODS).values():
        raise gr.Error(f"Unknown method {method!r}; choose 'tsne' or 'pca'.")
    visitor = Visitor.start(studio, visitor)
    chosen = highlighted(visitor, highlight)
    name = dict((v, k) for k, v in METHODS)[method]

    def report(stage: str, done: int, total: int) -> None:
        what = "the reference sample's rho_av (once)" if stage == "samples" else f"{name} of the {stage} points"
        progress(done / max(total, 1), desc=f"computing {what}")

    maps = visitor.embedding_maps(studio, method, progress=report)
    order = visitor.session.class_ids  # a class's colour follows its place here, the same in every map
    plots = [figures.embedding_figure(maps[key], order, chosen) for key in MAPS]
    return *plots, counts(maps), write_csv(maps, method), visitor


def highlight_choices(visitor: Visitor) -> list[tuple[str, str]]:
    return [("none", ""), *class_choices(visitor)]


def draw_tab(studio: Studio, visitor: Visitor | None, method: str, highlight: str | None, progress=gr.Progress()):  # noqa: B008 (how Gradio injects a tracker)
    """`draw`, and the highlight picker kept up with added classes (the tab's own events; the API has `draw`)."""
    *drawn, visitor = draw(studio, visitor, method, highlight, progress=progress)
    return *drawn, gr.Dropdown(choices=highlight_choices(visitor)), visitor


def build(studio: Studio, state: gr.State) -> EmbeddingsTab:
    with gr.Row():
        method = gr.Radio(METHODS, value="tsne", label="Projection")
        highlight = gr.Dropdown(
            highlight_choices(Visitor.start(studio)),
            value="",
            label="Highlight a class (or click a class in a map's legend to hide it, double-click to show it alone)",
            filterable=True,
        )
    draw_button = gr.Button("Draw")
    note = gr.Markdown(label="What the maps show", elem_id="embedding-counts")
    with gr.Row(elem_classes="kda-plots"):
        audio, visual = gr.Plot(label="Audio inputs"), gr.Plot(label="Visual inputs")
    with gr.Row(elem_classes="kda-plots"):
        fused, knowledge = gr.Plot(label="Fused rho_av"), gr.Plot(label="Knowledge t_c")
    csv = gr.File(label="2-D coordinates as CSV (x, y, class, seen/unseen, kind, set = map)", interactive=False)

    # The handler takes the visitor first (the state first among the inputs; the API never shows it).
    inputs, outputs = [state, method, highlight], [audio, visual, fused, knowledge, note, csv, state]
    draw_button.click(bind(draw, studio), inputs, outputs, api_name="embeddings")
    tab_outputs = [*outputs[:-1], highlight, state]
    gr.on([method.change, highlight.input], bind(draw_tab, studio), inputs, tab_outputs, api_visibility="private")
    return EmbeddingsTab(draw_tab, inputs, tab_outputs)
