"""The app's pure parts without a server: figure functions on small hand-made inputs, the message figure a
failing plot turns into, and settings from the environment (the key never shown)."""

import numpy as np
import pytest

from demo import figures
from demo.settings import NO_LLM, Settings
from kda.analysis import EmbeddingMap, Heatmap
from kda.prediction import ClassScore, ModalityContribution, Prediction


def prediction() -> Prediction:
    scores = [
        ClassScore("A", "Class A", True, 0.2, 0.6),
        ClassScore("B", "Class B", False, 0.4, 0.3),
        ClassScore("C", "Class C", False, 0.9, 0.1),
    ]
    modality = ModalityContribution(
        scores[0], scores[1], np.array([0.1, 0.0, -0.1]), np.array([0.3, 0.2, 0.0]), "visual", ""
    )
    return Prediction(
        scores, scores[:2], scores[1:], 0.5, np.zeros(4), np.zeros(2), np.zeros(3), True, modality, "test"
    )


def test_distance_bars_nearest_first_split_by_seen_and_zsl_drops_seen():
    fig = figures.distance_bars(prediction())
    # The bars are the distances of prediction(): A (seen) 0.2, B and C (unseen) 0.4 and 0.9.
    bars = {t.name: (list(t.x), list(t.y)) for t in fig.data}
    assert bars == {"seen class": (["Class A"], [0.2]), "unseen class": (["Class B", "Class C"], [0.4, 0.9])}
    assert list(fig.layout.xaxis.categoryarray) == ["Class A", "Class B", "Class C"]
    assert fig.layout.title.text.endswith("(GZSL: all classes; seen ones rank with +beta = 0.5)")
    assert fig.layout.yaxis.title.text.startswith("distance ||rho_av - t_c||")
    zsl = figures.distance_bars(prediction(), zsl=True)
    assert [t.name for t in zsl.data] == ["unseen class"] and list(zsl.data[0].x) == ["Class B", "Class C"]
    assert zsl.layout.title.text.endswith("(ZSL: unseen classes only)")


def test_modality_bars_take_the_shifts_of_the_top_classes():
    fig = figures.modality_bars(prediction())
    assert [list(t.y) for t in fig.data] == [[0.1, 0.0], [0.3, 0.2]]


def test_heatmap_labels_mark_unseen_classes_and_hover_names_both():
    hm = Heatmap(
        np.array([[1.0, 0.25], [0.25, 1.0]]), ["A", "B"], ["Class A", "Class B"], np.array([True, False]), "t", "cosine"
    )
    trace = figures.heatmap_figure(hm).data[0]
    assert list(trace.x) == ["Class A", "Class B (unseen)"] and trace.z[0][1] == 0.25
    assert "%{y}" in trace.hovertemplate and "%{x}" in trace.hovertemplate and "cosine" in trace.hovertemplate


def test_embedding_figure_knowledge_squares_query_star_and_subsampling_stated():
    kinds = ["sample", "sample", "knowledge", "knowledge", "query"]
    emap = EmbeddingMap(
        coords=np.arange(10.0).reshape(5, 2),
        class_ids=["A", "B", "A", "B", ""],
        names=["Class A", "Class B", "Class A", "Class B", "your video"],
        seen=np.array([True, False, True, False, False]),
        kind=kinds,
        title="Fused",
        method="tsne",
        total=40,
        shown=4,
        point_set="fused",
    )
    fig = figures.embedding_figure(emap)
    symbols = {t.name: t.marker.symbol for t in fig.data}
    assert symbols == {
        "videos of seen classes": "circle",
        "videos of unseen classes": "circle-open",
        "knowledge t_c, seen classes": "square",
        "knowledge t_c, unseen classes": "square-open",
        "this video": "star",
    }
    assert "4 of 40" in fig.layout.title.text and fig.layout.xaxis.title.text == "t-SNE 1"
    assert all(c in figures.CLASS_COLOURS for t in fig.data[:4] for c in t.marker.color)


def test_a_failing_plot_becomes_a_message_figure():
    fig = figures.heatmap_figure(None)
    assert not fig.data and "could not be drawn" in fig.layout.annotations[0].text


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("KDA_MAX_UPLOAD_MB", "3")
    monkeypatch.setenv("KDA_CONCURRENCY", "6")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    settings = Settings.from_env()
    assert settings.max_upload_bytes == 3 * 2**20 and settings.concurrency == 6
    assert settings.llm.configured and "sk-secret" not in repr(settings) + settings.llm.describe
    monkeypatch.setenv("KDA_MAX_VIDEO_SECONDS", "ten")
    with pytest.raises(SystemExit, match="KDA_MAX_VIDEO_SECONDS"):
        Settings.from_env()


def test_no_llm_configured_says_how_to_configure_one(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KDA_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    llm = Settings.from_env().llm
    assert not llm.configured and llm.describe == NO_LLM and "OPENAI_BASE_URL" in NO_LLM


def test_only_uploads_and_bundled_example_videos_are_readable(monkeypatch, tmp_path):
    import gradio as gr

    from demo.guards import readable_file, refusal, without_upload_folder
    from demo.settings import EXAMPLES_DIR, ROOT

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    upload = tmp_path / "uploads" / "0123abcd" / "clip.mp4"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"x")
    example = next(EXAMPLES_DIR.glob("*.mp4"))
    assert readable_file(str(upload)) == upload.resolve() and readable_file(str(example)) == example.resolve()
    escape = str(tmp_path / "uploads" / ".." / "secret.mp4")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    link = tmp_path / "uploads" / "0123abcd" / "link.mp4"
    link.symlink_to(tmp_path / "secret.mp4")
    refused = "this video was not uploaded to the app"
    for path, message in [
        ("/etc/passwd", f"passwd: {refused}"),
        (str(ROOT / "README.md"), f"README.md: {refused}"),
        (str(EXAMPLES_DIR / "README.md"), f"README.md: {refused}"),  # the examples folder holds more than videos
        (escape, f"secret.mp4: {refused}"),
        (str(link), f"link.mp4: {refused}"),  # inside the upload folder, but it points out
        (str(upload.parent), f"0123abcd: {refused}"),  # inside the upload folder, but not a file
        ("https://example.com/clip.mp4", "clip.mp4: the app does not fetch files from URLs; upload the video itself"),
        ("", "Upload a video first"),
    ]:
        with pytest.raises(gr.Error, match=message):
            readable_file(path)
    assert refusal(None) == "name the file by the path an upload returned"
    assert without_upload_folder(f"{upload}: is not a video") == "clip.mp4: is not a video"


def test_file_paths_finds_every_file_reference_in_a_request():
    from demo.guards import file_paths

    body = {"data": [{"video": {"path": "a.mp4", "meta": {}}}, 5, [{"path": "b.json"}, "text"], {"x": None}]}
    assert list(file_paths(body)) == ["a.mp4", "b.json"]
    assert list(file_paths("just text")) == []
