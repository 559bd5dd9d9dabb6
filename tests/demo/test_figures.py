"""Every plot as a pure function: figures drawn from small hand-made inputs and from real rankings, checked for
what a reader relies on (the order the ranking uses, a mark on the prediction, one colour per class in every
map, legends per class, rows tall enough to read, user text shown as text), and the palette behind them."""

import numpy as np
import pytest

from demo import figures, palette
from demo.state import markdown_text
from kda.analysis import EmbeddingMap, Heatmap
from kda.prediction import Candidates, ClassScore, ModalityContribution, Prediction, predict


def prediction(beta: float = 0.5) -> Prediction:
    """A seen class nearest by raw distance (A, 0.2) that calibrated stacking ranks second: A + beta = 0.7."""
    scores = [
        ClassScore("A", "Class A", True, 0.2, 0.3),
        ClassScore("B", "Class B", False, 0.4, 0.6),
        ClassScore("C", "Class C", False, 0.9, 0.1),
    ]
    modality = ModalityContribution(
        scores[1], scores[0], np.array([0.1, 0.0, -0.1]), np.array([0.3, 0.2, 0.0]), "visual", ""
    )
    return Prediction(
        scores=scores,
        gzsl=[scores[1], scores[0]],
        zsl=[scores[1], scores[2]],
        modality=modality,
        rho_rows=np.zeros((3, 4)),
        beta=beta,
        tau=0.1,
        audio=np.zeros(2),
        visual=np.zeros(3),
        has_audio=True,
        source="test",
    )


def random_prediction(seed: int, classes: int = 48, top_k: int = 5) -> Prediction:
    rng = np.random.default_rng(seed)
    candidates = Candidates(
        [f"c{i}" for i in range(classes)],
        [f"Class {i}" for i in range(classes)],
        rng.random(classes) < 0.8,
        rng.normal(size=(classes, 16)),
    )
    rows = rng.normal(size=(3, 16))
    return predict(
        rows, candidates, beta=0.3, tau=0.1, top_k=top_k, audio=np.zeros(2), visual=np.zeros(3), has_audio=True,
        source="random", notes=[],
    )  # fmt: skip


def bar_order(fig) -> list[str]:
    return list(fig.layout.xaxis.categoryarray)


def test_distance_bars_are_in_ranking_order_with_beta_on_seen_classes_and_the_prediction_marked():
    fig = figures.distance_bars(prediction())
    assert bar_order(fig) == ["Class B", "Class A", "Class C"]  # B 0.4 < A 0.2 + 0.5 < C 0.9
    bars = {t.name: (list(t.x), list(t.y)) for t in fig.data}
    assert bars == {
        "seen class: distance": (["Class A"], [0.2]),
        "unseen class: distance": (["Class B", "Class C"], [0.4, 0.9]),
        "+ beta = 0.5 (seen classes, GZSL)": (["Class A"], [0.5]),  # stacked: the bar reaches what is ranked
    }
    assert fig.layout.barmode == "stack"
    (mark,) = fig.layout.annotations
    assert mark.text == "predicted: Class B" and mark.x == "Class B" and mark.y == pytest.approx(0.4)
    zsl = figures.distance_bars(prediction(), zsl=True)
    assert bar_order(zsl) == ["Class B", "Class C"] and zsl.layout.annotations[0].text == "predicted: Class B"
    assert {t.name for t in zsl.data} == {"unseen class: distance"}  # no beta in ZSL
    assert zsl.layout.title.text.endswith("(ZSL: unseen classes only)")


@pytest.mark.parametrize("seed", range(5))
def test_distance_bars_lead_with_the_top_k_the_ranking_gives(seed):
    result = random_prediction(seed)
    assert bar_order(figures.distance_bars(result))[:5] == [s.name for s in result.gzsl]
    assert bar_order(figures.distance_bars(result, zsl=True))[:5] == [s.name for s in result.zsl]
    assert figures.distance_bars(result).layout.annotations[0].text == f"predicted: {result.gzsl[0].name}"


def test_modality_bars_take_the_shifts_of_the_top_classes():
    fig = figures.modality_bars(prediction())
    assert [list(t.x) for t in fig.data] == [["Class B", "Class A"]] * 2
    assert [list(t.y) for t in fig.data] == [[0.0, 0.1], [0.2, 0.3]]


def heatmap(names: list[str], seen: list[bool]) -> Heatmap:
    k = len(names)
    matrix = np.eye(k) * 0.75 + 0.25
    return Heatmap(matrix, [f"c{i}" for i in range(k)], names, np.array(seen), "t", "cosine")


def test_heatmap_labels_mark_unseen_classes_and_hover_names_both():
    trace = figures.heatmap_figure(heatmap(["Class A", "Class B"], [True, False])).data[0]
    assert list(trace.x) == ["Class A", "Class B (unseen)"] and trace.z[0][1] == 0.25
    assert "%{y}" in trace.hovertemplate and "%{x}" in trace.hovertemplate and "cosine" in trace.hovertemplate


def test_a_48_class_heatmap_has_rows_of_12_px_or_more_and_short_labels_with_full_names_on_hover():
    names = [f"A Rather Long Class Name Number {i}" for i in range(48)]
    fig = figures.heatmap_figure(heatmap(names, [i % 8 != 0 for i in range(48)]))
    assert fig.layout.height - figures.HEATMAP_CHROME_PX >= 12 * 48
    assert fig.layout.xaxis.tickfont.size <= 12 and fig.layout.yaxis.tickfont.size <= 12
    trace = fig.data[0]
    assert list(trace.x)[0] == "A Rather Long Class Name Number 0 (unseen)"  # what the hover names
    ticks = list(fig.layout.xaxis.ticktext)
    assert list(fig.layout.xaxis.tickvals) == list(trace.x) and len(set(ticks)) == 48
    assert ticks[:2] == ["A Rather…e Number 0 (unseen)", "A Rather…e Number 1"]
    assert all(len(t.removesuffix(" (unseen)")) <= figures.LABEL_CHARS for t in ticks)


def test_equal_names_stay_apart_on_the_axes():
    assert figures.unique(["Dup", "Dup", "Other", "Dup"]) == ["Dup", "Dup #2", "Other", "Dup #3"]


def embedding_map(class_ids: list[str], kinds: list[str], seen: list[bool], point_set: str) -> EmbeddingMap:
    n = len(class_ids)
    return EmbeddingMap(
        coords=np.arange(2.0 * n).reshape(n, 2),
        class_ids=class_ids,
        names=[f"Name of {c}" if c else "your video" for c in class_ids],
        seen=np.array(seen),
        kind=kinds,
        title=point_set,
        method="tsne",
        total=n,
        shown=n,
        point_set=point_set,
    )


def colours_by_class(fig) -> dict[str, str]:
    return {t.legendgroup: t.marker.color for t in fig.data if t.legendgroup}


def test_a_class_has_one_colour_in_every_map_and_keeps_it_when_a_class_is_added():
    before = ["A", "B", "C"]
    after = [*before, "Added"]  # an added class comes last in the knowledge's class order
    audio = embedding_map(["B", "C", "C", ""], ["sample"] * 3 + ["query"], [False, True, True, False], "audio")
    known = embedding_map(after, ["knowledge"] * 4, [True, False, True, False], "knowledge")
    drawn = colours_by_class(figures.embedding_figure(audio, before))
    again = colours_by_class(figures.embedding_figure(audio, after))
    knowledge = colours_by_class(figures.embedding_figure(known, after))
    assert drawn == again == {c: knowledge[c] for c in ("B", "C")}
    assert len(set(knowledge.values())) == 4 and knowledge == palette.class_colours(after)


def test_each_class_has_one_legend_entry_that_shows_and_hides_all_its_points():
    emap = embedding_map(
        ["A", "A", "B", "A", "B", ""],
        ["sample", "sample", "sample", "knowledge", "knowledge", "query"],
        [True, True, False, True, False, False],
        "fused",
    )
    fig = figures.embedding_figure(emap, ["A", "B"])
    entries = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in entries] == ["Name of A", "Name of B (unseen)", "this video"]
    symbols = {(t.legendgroup, t.marker.symbol): len(t.x) for t in fig.data if t.legendgroup}
    assert symbols == {("A", "circle"): 2, ("A", "square"): 1, ("B", "circle-open"): 1, ("B", "square-open"): 1}
    assert fig.layout.legend.groupclick == "togglegroup"  # a click hides a class's videos and knowledge together
    assert figures.MARKERS in fig.layout.title.subtitle.text


def test_a_highlighted_class_is_drawn_large_on_top_and_the_others_faint():
    emap = embedding_map(["A", "B", "C", "B"], ["sample"] * 3 + ["knowledge"], [True] * 4, "fused")
    fig = figures.embedding_figure(emap, ["A", "B", "C"], highlight="B")
    assert [t.legendgroup for t in fig.data][-2:] == ["B", "B"]  # drawn last: on top
    opacity = {t.legendgroup: t.opacity for t in fig.data}
    assert opacity == {"A": 0.15, "C": 0.15, "B": 1.0}
    plain = figures.embedding_figure(emap, ["A", "B", "C"])
    assert {t.opacity for t in plain.data} == {1.0}
    sizes = {t.legendgroup: t.marker.size for t in fig.data if t.marker.symbol == "circle"}
    assert sizes["B"] > sizes["A"] == plain.data[0].marker.size


def test_the_palette_grows_without_changing_and_keeps_48_classes_apart_for_every_viewer():
    colours = palette.palette(48)
    assert colours[: len(palette.SAFE_START)] == palette.SAFE_START and palette.palette(60)[:48] == colours
    assert len(set(colours)) == 48
    views = palette.views(np.array([palette.from_hex(c) for c in colours]))  # (3, 48, 3): normal, deutan, protan
    gaps = np.linalg.norm(views[:, :, None] - views[:, None], axis=-1) + np.eye(48) * 1e9
    assert gaps.min() > 8  # CIELAB units: every pair differs visibly, in the worst of the three views
    lightness = views[0, :, 0]
    assert lightness.min() >= palette.LIGHTNESS[0] - 0.5 and lightness.max() <= palette.LIGHTNESS[1] + 0.5


MARKUP = "<b>Bold</b> & <a href='x'>link</a>"


def test_user_text_is_shown_as_text_in_every_figure():
    escaped = "&lt;b&gt;Bold&lt;/b&gt; &amp; &lt;a href='x'&gt;link&lt;/a&gt;"
    scores = [ClassScore("X", MARKUP, False, 0.1, 0.9), ClassScore("Y", "Plain", True, 0.5, 0.1)]
    result = prediction()
    result.scores, result.gzsl, result.zsl = scores, scores, scores[:1]
    result.modality.audio_shift, result.modality.visual_shift = np.zeros(2), np.zeros(2)
    assert bar_order(figures.distance_bars(result))[0] == escaped
    assert figures.distance_bars(result).layout.annotations[0].text == f"predicted: {escaped}"
    assert list(figures.modality_bars(result).data[0].x)[0] == escaped
    assert list(figures.heatmap_figure(heatmap([MARKUP, "Plain"], [True, True])).data[0].x)[0] == escaped
    emap = embedding_map(["X"], ["knowledge"], [True], "knowledge")
    emap.names[0] = MARKUP
    trace = figures.embedding_figure(emap).data[0]
    assert trace.name == escaped and trace.customdata[0][0] == escaped


def test_markdown_text_shows_markup_and_markdown_as_the_characters_typed():
    assert markdown_text(MARKUP) == r"&lt;b&gt;Bold&lt;/b&gt; &amp; &lt;a href='x'&gt;link&lt;/a&gt;"
    assert markdown_text("Saved Archery: 1 text(s) changed.") == "Saved Archery: 1 text(s) changed."  # no noise
    assert markdown_text("**x** [a](http://e) # _y_") == r"\*\*x\*\* \[a\](http\://e) \# \_y\_"


def test_a_failing_plot_becomes_a_message_figure():
    fig = figures.heatmap_figure(None)
    assert not fig.data and "could not be drawn" in fig.layout.annotations[0].text


def test_margin_heatmap_states_its_note_and_marks_margins_never_applied():
    seen = np.array([True, False, True])
    applied = np.outer(seen, seen)
    names = ["A", "B", "C"]
    heatmap = Heatmap(np.ones((3, 3)), ["a", "b", "c"], names, seen, "Adaptive margin", "margin", "a note", applied)
    figure = figures.heatmap_figure(heatmap).to_plotly_json()
    assert figure["layout"]["title"]["text"].endswith("<br><sup>a note</sup>")
    words = np.array(figure["data"][0]["customdata"])
    assert np.array_equal(words == "applied in training", applied)
    assert "%{customdata}" in figure["data"][0]["hovertemplate"]
    plain = figures.heatmap_figure(Heatmap(np.ones((3, 3)), ["a", "b", "c"], names, seen, "Similarity", "cos"))
    assert "customdata" not in plain.to_plotly_json()["data"][0] and "<sup>" not in plain.layout.title.text
