"""Heatmaps tab: class x class knowledge similarity cos(t_y, t_c) and the adaptive margin m(y, c) the loss
uses, of the visitor's current knowledge, in cluster order, for all classes or a subset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from demo import figures
from demo.guards import bind, on_page, user_errors
from demo.state import Visitor, class_choices
from kda.studio import Studio

SUBSETS = ("all classes", "seen classes", "unseen classes", "top-k of the last prediction", "classes chosen below")
ORDERS = [("clusters (hierarchical)", "cluster"), ("name", "name")]


@dataclass
class HeatmapsTab:
    draw: Callable  # module-level `draw`, taking (studio, visitor, order, subset, classes)
    inputs: list  # the state first, then the tab's own controls
    outputs: list


def subset_ids(visitor: Visitor, subset: str, chosen: list[str] | None) -> list[str] | None:
    """The class ids to show, or None for all of them."""
    session = visitor.session
    if subset == "seen classes":
        return [c for c, s in zip(session.class_ids, session.seen, strict=True) if s]
    if subset == "unseen classes":
        return [c for c, s in zip(session.class_ids, session.seen, strict=True) if not s]
    if subset == "top-k of the last prediction":
        if visitor.prediction is None:
            raise gr.Error("Classify a video first: this subset is the top-k of the last prediction.")
        return [s.class_id for s in visitor.prediction.gzsl]
    if subset == "classes chosen below":
        if not chosen or len(chosen) < 2:
            raise gr.Error("Choose two or more classes below: the heatmaps show them once you have.")
        return [session.knowledge.resolve(c) for c in chosen]
    if subset != "all classes":
        raise gr.Error(f"Unknown subset {subset!r}; choose one of: {', '.join(SUBSETS)}.")
    return None


@user_errors
def similarity(studio: Studio, visitor: Visitor | None, order: str, subset: str, classes: list[str] | None):
    """Heatmap of cos(t_y, t_c) of the visitor's knowledge; subset as in the tab, `classes` ids or names."""
    visitor = Visitor.start(studio, visitor)
    ids = subset_ids(visitor, subset, classes)
    return figures.heatmap_figure(studio.similarity(visitor.session, order=order, classes=ids)), visitor


@user_errors
def margins(studio: Studio, visitor: Visitor | None, order: str, subset: str, classes: list[str] | None):
    """Heatmap of the adaptive margin m(y, c) the loss adds, from the visitor's knowledge."""
    visitor = Visitor.start(studio, visitor)
    ids = subset_ids(visitor, subset, classes)
    return figures.heatmap_figure(studio.margins(visitor.session, order=order, classes=ids)), visitor


@user_errors
def draw(studio: Studio, visitor: Visitor | None, order: str, subset: str, classes: list[str] | None):
    """Both heatmaps, the class chooser kept up with added classes, and the status line. A subset that cannot
    be drawn yet (fewer than two classes chosen, no prediction for its top-k) leaves the heatmaps as they are
    and the status line says what it waits for."""
    visitor = Visitor.start(studio, visitor)
    chooser = gr.Dropdown(choices=class_choices(visitor))
    try:
        subset_ids(visitor, subset, classes)
    except gr.Error as e:
        return gr.skip(), gr.skip(), visitor, chooser, e.message
    figure = similarity(studio, visitor, order, subset, classes)[0]
    return figure, *margins(studio, visitor, order, subset, classes), chooser, ""


def build(studio: Studio, state: gr.State) -> HeatmapsTab:
    base = Visitor.start(studio)
    with gr.Row():
        order = gr.Radio(ORDERS, value="cluster", label="Order")
        subset = gr.Radio(list(SUBSETS), value="all classes", label="Classes")
    chosen = gr.Dropdown(
        class_choices(base),
        multiselect=True,
        allow_custom_value=True,  # an unknown class reaches `subset_ids`, which names it and the close ones
        label="Classes to show (for 'classes chosen below')",
    )
    draw_button = gr.Button("Draw")
    status = gr.Markdown(label="Heatmap status", elem_id="heatmap-status")
    similarity_plot = gr.Plot(label="Knowledge similarity", elem_classes="kda-wide-plot")
    margin_plot = gr.Plot(label="Adaptive margins", elem_classes="kda-wide-plot")

    # Every handler takes the visitor first (the state first among the inputs; the API never shows it). The
    # Draw button's two endpoints refuse alike on the page: one warning says it (`on_page`), no output changes.
    inputs = [state, order, subset, chosen]
    heatmap = [similarity_plot, state]
    draw_button.click(bind(on_page(similarity, 2), studio), inputs, heatmap, api_name="similarity")
    heatmap = [margin_plot, state]
    draw_button.click(bind(on_page(margins, 2, say=False), studio), inputs, heatmap, api_name="margins")
    outputs = [similarity_plot, margin_plot, state, chosen, status]
    triggers = [order.change, subset.change, chosen.change]
    gr.on(triggers, bind(draw, studio), inputs, outputs, api_visibility="private", show_progress_on=[status])
    return HeatmapsTab(draw, inputs, outputs)
