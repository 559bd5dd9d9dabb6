"""Every plot of the app: pure functions from library results to `go.Figure`, no Gradio.

Each one is `guarded`: if drawing fails, the callback still returns a figure, one that says what went wrong,
instead of breaking the whole update. Colours come from colour-blind-safe palettes (Okabe-Ito for the few
fixed roles, Paul Tol's "safe" set, plotly's `Safe`, for classes).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from kda.analysis import EmbeddingMap, Heatmap
from kda.prediction import Prediction

log = logging.getLogger(__name__)

SEEN, UNSEEN, QUERY = "#0072B2", "#D55E00", "#000000"  # Okabe-Ito blue, vermillion, black
WITHOUT_AUDIO, WITHOUT_VISUAL = "#E69F00", "#56B4E9"  # Okabe-Ito orange, sky blue
CLASS_COLOURS = px.colors.qualitative.Safe
AXES = {"tsne": ("t-SNE 1", "t-SNE 2"), "pca": ("PC 1", "PC 2")}
MAP_TRACES = (  # (legend name, kind, seen, marker symbol): filled markers are seen classes, open ones unseen
    ("videos of seen classes", "sample", True, "circle"),
    ("videos of unseen classes", "sample", False, "circle-open"),
    ("knowledge t_c, seen classes", "knowledge", True, "square"),
    ("knowledge t_c, unseen classes", "knowledge", False, "square-open"),
)
QUERY_TRACE = "this video"


def message_figure(text: str, title: str = "") -> go.Figure:
    """An empty figure that says `text` in its middle."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 14})
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False}, height=320)
    return fig


def guarded(draw: Callable[..., go.Figure]) -> Callable[..., go.Figure]:
    @functools.wraps(draw)
    def safe(*args, **kwargs) -> go.Figure:
        try:
            return draw(*args, **kwargs)
        except Exception as e:  # a plot must never take the rest of the update down with it
            log.exception("figure %s failed", draw.__name__)
            return message_figure(f"This plot could not be drawn: {e}", title=draw.__name__.replace("_", " "))

    return safe


def seen_word(seen: bool) -> str:
    return "seen" if seen else "unseen"


@guarded
def distance_bars(prediction: Prediction | None, zsl: bool = False) -> go.Figure:
    """This video's distance ||rho_av - t_c|| to every candidate class, nearest first (ZSL: unseen only)."""
    if prediction is None:
        return message_figure("Classify a video or a reference sample to see its distance to every class.")
    scores = sorted((s for s in prediction.scores if not (zsl and s.seen)), key=lambda s: s.distance)
    fig = go.Figure()
    for seen, colour in ((True, SEEN), (False, UNSEEN)):
        group = [s for s in scores if s.seen == seen]
        if group:
            fig.add_bar(
                x=[s.name for s in group],
                y=[s.distance for s in group],
                name=f"{seen_word(seen)} class",
                marker_color=colour,
                customdata=[[s.score] for s in group],
                hovertemplate="%{x}<br>distance %{y:.3f}<br>score %{customdata[0]:.3f}<extra>"
                + seen_word(seen)
                + "</extra>",
            )
    mode = "ZSL: unseen classes only" if zsl else f"GZSL: all classes; seen ones rank with +beta = {prediction.beta:g}"
    fig.update_layout(
        title=f"Distance from this video to each class, nearest first ({mode})",
        xaxis={"title": "class", "categoryorder": "array", "categoryarray": [s.name for s in scores], "tickangle": -60},
        yaxis={"title": "distance ||rho_av - t_c|| (shorter = more likely)"},
        legend={"title": "class"},
        height=420,
        margin={"b": 140},
    )
    return fig


@guarded
def modality_bars(prediction: Prediction | None) -> go.Figure:
    """How far each top class moves away when the audio or the visual input is taken away."""
    if prediction is None:
        return message_figure("Classify a video to see which modality drove the decision.")
    top = prediction.gzsl
    position = {s.class_id: i for i, s in enumerate(prediction.scores)}
    rows = [position[s.class_id] for s in top]
    fig = go.Figure()
    for name, shift, colour in (
        ("without audio (visual only)", prediction.modality.audio_shift, WITHOUT_AUDIO),
        ("without visual (audio only)", prediction.modality.visual_shift, WITHOUT_VISUAL),
    ):
        fig.add_bar(
            x=[s.name for s in top],
            y=np.asarray(shift)[rows].tolist(),
            name=name,
            marker_color=colour,
            hovertemplate="%{x}<br>distance change %{y:+.3f}<extra>" + name + "</extra>",
        )
    fig.update_layout(
        title=f"Modality contribution: {prediction.modality.driver} drove this decision",
        barmode="group",
        xaxis={"title": "top classes (GZSL)"},
        yaxis={"title": "change in distance when a modality is removed"},
        legend={"title": "input"},
        height=360,
    )
    return fig


@guarded
def heatmap_figure(heatmap: Heatmap) -> go.Figure:
    """A class x class matrix; hovering names both classes (unseen ones marked) and the value."""
    labels = [n if s else f"{n} (unseen)" for n, s in zip(heatmap.names, heatmap.seen, strict=True)]
    k = len(labels)
    fig = go.Figure(
        go.Heatmap(
            z=np.round(
                np.asarray(heatmap.matrix, dtype=float), 4
            ).tolist(),  # plain lists: readable JSON for API callers
            x=labels,
            y=labels,
            colorscale="Cividis",
            colorbar={"title": heatmap.value_label},
            customdata=None if heatmap.applied is None else applied_words(heatmap.applied),
            hovertemplate=f"row y: %{{y}}<br>column c: %{{x}}<br>{heatmap.value_label}: %{{z:.3f}}"
            + ("" if heatmap.applied is None else "<br>%{customdata}")
            + "<extra></extra>",
        )
    )
    ticks = {"tickfont": {"size": 9 if k > 40 else 11}, "showticklabels": k <= 120, "dtick": 1 if k <= 80 else None}
    fig.update_layout(
        title=f"{heatmap.title} ({k} classes)" + (f"<br><sup>{heatmap.note}</sup>" if heatmap.note else ""),
        xaxis={"title": "class c", **ticks},
        yaxis={"title": "class y", "autorange": "reversed", **ticks},
        height=max(420, min(900, 160 + 9 * k)),
    )
    return fig


def applied_words(applied: np.ndarray) -> list[list[str]]:
    return np.where(applied, "applied in training", "never applied by the loss").tolist()


def class_colours(class_ids: list[str]) -> dict[str, str]:
    order = sorted(set(class_ids))
    return {c: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, c in enumerate(order)}


@guarded
def embedding_figure(emap: EmbeddingMap) -> go.Figure:
    """A 2-D map in the style of the paper's Figure 4: videos as dots, knowledge as squares, colour by class,
    filled for seen classes and open for unseen ones, the query video as a large star."""
    kinds, seen = np.asarray(emap.kind), np.asarray(emap.seen, dtype=bool)
    colours = class_colours(emap.class_ids)
    fig = go.Figure()
    for name, kind, is_seen, symbol in MAP_TRACES:
        rows = np.flatnonzero((kinds == kind) & (seen == is_seen))
        if len(rows):
            add_points(
                fig,
                emap,
                rows,
                name,
                symbol,
                [colours[emap.class_ids[i]] for i in rows],
                11 if kind == "knowledge" else 7,
            )
    query = np.flatnonzero(kinds == "query")
    if len(query):
        add_points(fig, emap, query, QUERY_TRACE, "star", QUERY, 20, line={"color": "white", "width": 1.5})
    x_title, y_title = AXES.get(emap.method, ("dimension 1", "dimension 2"))
    title = emap.title
    if emap.shown < emap.total and "subsampled" not in title:
        title += f" ({emap.shown} of {emap.total} points shown, subsampled for speed)"
    fig.update_layout(
        title=title,
        xaxis={"title": x_title},
        yaxis={"title": y_title},
        legend={"title": "marker (colour = class)"},
        height=460,
    )
    return fig


def add_points(fig: go.Figure, emap: EmbeddingMap, rows, name: str, symbol: str, colour, size: int, line=None) -> None:
    fig.add_scatter(
        x=np.asarray(emap.coords)[rows, 0].tolist(),
        y=np.asarray(emap.coords)[rows, 1].tolist(),
        mode="markers",
        name=name,
        marker={"symbol": symbol, "color": colour, "size": size, "line": line or {"width": 1.5, "color": colour}},
        customdata=[[emap.names[i], seen_word(emap.seen[i]), emap.kind[i]] for i in rows],
        hovertemplate="%{customdata[0]} (%{customdata[1]})<br>%{customdata[2]}<br>(%{x:.2f}, %{y:.2f})<extra></extra>",
    )
