"""Every plot of the app: pure functions from library results to `go.Figure`, no Gradio.

Each one is `guarded`: if drawing fails, the callback still returns a figure, one that says what went wrong,
instead of breaking the whole update. Colours come from colour-blind-safe palettes (Okabe-Ito for the few
fixed roles, `demo.palette` for classes). User text (class names) is shown as text: `plain` escapes it.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go

from demo import palette
from kda.analysis import EmbeddingMap, Heatmap
from kda.prediction import Prediction

log = logging.getLogger(__name__)

SEEN, UNSEEN, QUERY = "#0072B2", "#D55E00", "#000000"  # Okabe-Ito blue, vermillion, black
WITHOUT_AUDIO, WITHOUT_VISUAL = "#E69F00", "#56B4E9"  # Okabe-Ito orange, sky blue
BETA = "#BBBBBB"  # grey: the calibration GZSL adds to seen classes' distances
AXES = {"tsne": ("t-SNE 1", "t-SNE 2"), "pca": ("PC 1", "PC 2")}
SYMBOLS = {  # (kind, seen) -> marker: filled markers are seen classes, open ones unseen
    ("sample", True): "circle",
    ("sample", False): "circle-open",
    ("knowledge", True): "square",
    ("knowledge", False): "square-open",
}
MARKERS = "● video  ■ knowledge t_c  (filled: seen, open: unseen)  ★ yours"
QUERY_TRACE = "this video"
ROW_PX = 14  # heatmap pixels per class while names are shown: 11 px labels need 12 px or more
LABELLED_MAX = 120  # classes up to which a heatmap names them on its axes (beyond, hover names them)
LABEL_CHARS = 20  # a class name's length on an axis ("Boxing Punching Bag" fits); longer ones are cut
HEATMAP_CHROME_PX = 330  # title, rotated x labels and axis titles around the rows


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


def plain(value: str) -> str:
    """User text (a class name) as Plotly shows it, literally: Plotly reads tags (<b>, <br>, <a>) and entities
    in every label, so those characters are escaped."""
    return html.escape(str(value), quote=False)


def seen_word(seen: bool) -> str:
    return "seen" if seen else "unseen"


@guarded
def distance_bars(prediction: Prediction | None, zsl: bool = False) -> go.Figure:
    """This video's distance to every candidate class (ZSL: unseen only), in the order the ranking puts them:
    GZSL ranks ||rho_av - t_c|| + beta for seen classes (calibrated stacking), so a seen class's bar carries
    its beta on top; the predicted class, the first bar, is marked."""
    if prediction is None:
        return message_figure("Classify a video or a reference sample to see its distance to every class.")
    ranked = prediction.ranked(zsl)
    labels = [plain(s.name) for s, _ in ranked]
    fig = go.Figure()
    for seen, colour in ((True, SEEN), (False, UNSEEN)):
        rows = [i for i, (s, _) in enumerate(ranked) if s.seen == seen]
        if rows:
            fig.add_bar(
                x=[labels[i] for i in rows],
                y=[ranked[i][0].distance for i in rows],
                name=f"{seen_word(seen)} class: distance",
                marker={"color": colour},
                customdata=[[ranked[i][0].score, ranked[i][1], i + 1] for i in rows],
                hovertemplate="%{x}<br>rank %{customdata[2]}<br>distance %{y:.3f}<br>ranked by %{customdata[1]:.3f}"
                "<br>score %{customdata[0]:.3f}<extra>" + seen_word(seen) + "</extra>",
            )
    calibrated_rows = [i for i, (s, _) in enumerate(ranked) if s.seen and not zsl]
    if calibrated_rows and prediction.beta:
        fig.add_bar(
            x=[labels[i] for i in calibrated_rows],
            y=[prediction.beta] * len(calibrated_rows),
            name=f"+ beta = {prediction.beta:.3g} (seen classes, GZSL)",
            marker={"color": BETA, "pattern": {"shape": "/"}},
            hovertemplate="%{x}<br>+ beta %{y:.3f}<extra>calibration</extra>",
        )
    top = ranked[0]
    fig.add_annotation(
        x=labels[0],
        y=top[1],
        text=f"predicted: {labels[0]}",
        showarrow=True,
        arrowhead=2,
        ax=40,
        ay=-40,
        xanchor="left",
        bgcolor="white",
        bordercolor=QUERY,
    )
    if zsl:
        mode, y_title = "ZSL: unseen classes only", "distance ||rho_av - t_c||"
    else:
        mode, y_title = "GZSL: all classes, seen ones ranked with + beta", "distance (+ beta if seen)"
    fig.update_layout(
        title=f"Distance from this video to each class, in ranking order ({mode})",
        barmode="stack",
        xaxis={"title": "class (predicted first)", "categoryorder": "array", "categoryarray": labels, "tickangle": -60},
        yaxis={"title": y_title},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "traceorder": "normal"},
        height=460,
        margin={"b": 140, "t": 90},
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
            x=unique([plain(s.name) for s in top]),
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
        legend={"title": "input", "orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        height=380,
    )
    return fig


@guarded
def heatmap_figure(heatmap: Heatmap) -> go.Figure:
    """A class x class matrix, ROW_PX or more per row while its classes are labelled: the axes show names cut
    to LABEL_CHARS (unseen ones marked), hovering names both classes in full and the value."""
    marks = ["" if s else " (unseen)" for s in heatmap.seen]
    labels = unique([plain(n) + m for n, m in zip(heatmap.names, marks, strict=True)])
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
    labelled = k <= LABELLED_MAX
    ticks = {
        "showticklabels": labelled,
        "tickfont": {"size": 11},
        "tickmode": "array" if labelled else "auto",
        "tickvals": labels if labelled else None,
        "ticktext": [plain(shorten(n)) + m for n, m in zip(heatmap.names, marks, strict=True)] if labelled else None,
        "automargin": True,
    }
    fig.update_layout(
        title=f"{heatmap.title} ({k} classes)"
        + ("" if labelled else f"; hover for names (labels shown up to {LABELLED_MAX})")
        + (f"<br><sup>{heatmap.note}</sup>" if heatmap.note else ""),
        xaxis={"title": "class c", "tickangle": -90, **ticks},
        yaxis={"title": "class y", "autorange": "reversed", **ticks},
        height=max(420, HEATMAP_CHROME_PX + ROW_PX * k) if labelled else 900,
    )
    return fig


def applied_words(applied: np.ndarray) -> list[list[str]]:
    return np.where(applied, "applied in training", "never applied by the loss").tolist()


def shorten(label: str) -> str:
    """An axis label of at most LABEL_CHARS characters (the hover has the full name): a long one keeps its start
    and its end, where names of one family differ ("Playing ... Flute")."""
    if len(label) <= LABEL_CHARS:
        return label
    head = (LABEL_CHARS - 1) // 2
    return label[:head].rstrip() + "…" + label[-(LABEL_CHARS - 1 - head) :].lstrip()


def unique(labels: list[str]) -> list[str]:
    """Labels made distinct (a category axis merges equal ones): later repeats get " #2", " #3"."""
    count: dict[str, int] = {}
    out = []
    for label in labels:
        count[label] = count.get(label, 0) + 1
        out.append(label if count[label] == 1 else f"{label} #{count[label]}")
    return out


@guarded
def embedding_figure(
    emap: EmbeddingMap, class_order: list[str] | None = None, highlight: str | None = None
) -> go.Figure:
    """A 2-D map in the style of the paper's Figure 4: videos as dots, knowledge as squares, filled for seen
    classes and open for unseen ones, the query video as a large star.

    Each class has one colour (`demo.palette`, by its place in `class_order`: pass the knowledge's class ids
    so that a class has the same colour in every map) and one legend entry that shows or hides its points;
    `highlight` (a class id) draws that class large and on top, every other one faint."""
    class_ids = np.asarray(emap.class_ids, dtype=object)
    present = list(dict.fromkeys(c for c in emap.class_ids if c))
    order = list(class_order or [])
    colours = palette.class_colours(order + [c for c in present if c not in set(order)])
    fig = go.Figure()
    for class_id in sorted(present, key=lambda c: c == highlight):  # the highlighted class is drawn last, on top
        add_class(fig, emap, np.flatnonzero(class_ids == class_id), colours[class_id], highlight)
    query = np.flatnonzero(np.asarray(emap.kind) == "query")
    if len(query):
        add_points(fig, emap, query, QUERY_TRACE, "star", QUERY, 20, line={"color": "white", "width": 1.5})
    x_title, y_title = AXES.get(emap.method, ("dimension 1", "dimension 2"))
    title = emap.title
    if emap.shown < emap.total and "subsampled" not in title:
        title += f" ({emap.shown} of {emap.total} points shown, subsampled for speed)"
    fig.update_layout(
        title={"text": title, "subtitle": {"text": MARKERS}},
        xaxis={"title": x_title},
        yaxis={"title": y_title},
        legend={
            "title": {"text": "class (click: hide/show, double-click: alone)", "side": "top"},
            "orientation": "h",
            "yanchor": "top",
            "y": -0.12,
            "x": 0,
            "maxheight": 0.3,  # of the figure's height; more entries scroll
            "groupclick": "togglegroup",
        },
        height=640,
        margin={"t": 90, "l": 60, "r": 20},  # the legend is below: no room kept on the right
    )
    return fig


def add_class(fig: go.Figure, emap: EmbeddingMap, rows: np.ndarray, colour: str, highlight: str | None) -> None:
    """One class's points: its videos, then its knowledge point, one legend entry for both."""
    class_id, name, seen = emap.class_ids[rows[0]], emap.names[rows[0]], bool(emap.seen[rows[0]])
    faint = highlight is not None and class_id != highlight
    kinds = np.asarray(emap.kind)[rows]
    for kind, size in (("sample", 7), ("knowledge", 11)):
        part = rows[kinds == kind]
        if len(part):
            add_points(
                fig,
                emap,
                part,
                plain(name) + ("" if seen else " (unseen)"),
                SYMBOLS[kind, seen],
                colour,
                size + (4 if class_id == highlight else 0),
                legendgroup=class_id,
                showlegend=not any(t.legendgroup == class_id for t in fig.data),
                opacity=0.15 if faint else 1.0,
            )


def add_points(
    fig: go.Figure, emap: EmbeddingMap, rows, name: str, symbol: str, colour, size: int, line=None, **trace
) -> None:
    fig.add_scatter(
        x=np.asarray(emap.coords)[rows, 0].tolist(),
        y=np.asarray(emap.coords)[rows, 1].tolist(),
        mode="markers",
        name=name,
        marker={"symbol": symbol, "color": colour, "size": size, "line": line or {"width": 1.5, "color": colour}},
        customdata=[[plain(emap.names[i]), seen_word(emap.seen[i]), emap.kind[i]] for i in rows],
        hovertemplate="%{customdata[0]} (%{customdata[1]})<br>%{customdata[2]}<br>(%{x:.2f}, %{y:.2f})<extra></extra>",
        **trace,
    )
