"""The app's parts without a server: settings from the environment (the key never shown), the file rule, and
the tabs' handlers called as plain functions on the bundled demo checkpoint, with the one rule for hidden tabs.
The figures have their own tests (test_figures.py)."""

import inspect
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest

from demo import classify, embeddings, heatmaps, knowledge, knowledge_ab, saved_edits
from demo.guards import bind
from demo.settings import NO_LLM, Settings
from demo.state import Visitor, prediction_dict

DEMO = Path(__file__).resolve().parents[2] / "checkpoints" / "demo-ucf-cls"
PASTA = (
    "Boiling pasta in a big pot on a kitchen stove.",
    "Steam rises while a cook stirs noodles with a wooden spoon.",
    "Bubbling water and the clink of a spoon against metal.",
)
needs_demo = pytest.mark.skipif(not DEMO.is_dir(), reason="no demo checkpoint: run `make checkpoint`")


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("KDA_MAX_UPLOAD_MB", "3")
    monkeypatch.setenv("KDA_CONCURRENCY", "6")
    monkeypatch.setenv("KDA_CLASSIFY_CONCURRENCY", "3")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    settings = Settings.from_env()
    assert settings.max_upload_bytes == 3 * 2**20 and settings.concurrency == 6 and settings.classify_concurrency == 3
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


# ---------------------------------------------------------------------------------------------
# The tabs' handlers as plain functions: (studio, visitor, the tab's inputs) -> the tab's outputs


@needs_demo
def test_handlers_classify_edit_and_draw_without_a_server(studio):
    import gradio as gr

    *panel, details, visitor = classify.classify_sample(studio, None, 0, 3, classify.GZSL)
    assert details == prediction_dict(visitor.prediction) and len(details["gzsl"]) == 3
    assert set(panel[0]) == {f"{s['name']} ({'seen' if s['seen'] else 'unseen'})" for s in details["gzsl"]}
    target = details["gzsl"][0]["class_id"]
    status, rows, picker, targets, name, *texts, after, same = knowledge.edit(studio, visitor, target, "", *PASTA)
    assert same is visitor and status.startswith(f"Saved {target}") and tuple(texts) == PASTA
    assert next(r for r in rows if r[0] == target)[3] == "yes" and picker.value == target
    moved = [
        s["class_id"]
        for s, b in zip(after["scores"], details["scores"], strict=True)
        if not np.isclose(s["distance"], b["distance"], atol=1e-6)
    ]
    assert moved == [target] and after == prediction_dict(visitor.prediction)
    drawn = heatmaps.draw(studio, visitor, "name", "top-k of the last prediction", [])
    similarity, margins, same, chooser, status = drawn
    assert isinstance(similarity, go.Figure) and len(similarity.data[0].x) == 3 and same is visitor
    assert len(margins.data[0].x) == 3 and len(chooser.choices) == len(visitor.session.class_ids) and status == ""
    *maps, note, csv, same = embeddings.draw(studio, visitor, "pca")
    assert len(maps) == 4 and note.startswith("**Points per map:**") and Path(csv).is_file() and same is visitor
    # A subset that cannot be drawn yet says why in the tab's status line and leaves the heatmaps as they are.
    similarity, margins, _, _, status = heatmaps.draw(studio, None, "name", "top-k of the last prediction", [])
    assert (similarity, margins) == (gr.skip(), gr.skip()) and status.startswith("Classify a video first")
    *plots, _, _, status = heatmaps.draw(studio, visitor, "name", "classes chosen below", [target])
    assert plots == [gr.skip(), gr.skip()] and status.startswith("Choose two or more classes below")


@needs_demo
def test_a_hidden_tab_redraws_when_selected_only_if_it_is_stale(studio):
    import gradio as gr

    from app import when_stale

    select = bind(when_stale("heatmaps", heatmaps.draw, 5), studio)  # what Gradio calls on selection
    drawn = select(None, "name", "all classes", [])
    visitor = drawn[2]
    assert isinstance(visitor, Visitor) and isinstance(drawn[0], go.Figure)
    assert select(visitor, "name", "all classes", []) == (gr.skip(),) * 5  # nothing changed: left as it is
    knowledge.edit(studio, visitor, "ApplyLipstick", "", *PASTA)  # made on the Knowledge tab
    assert isinstance(select(visitor, "name", "all classes", [])[0], go.Figure)
    assert select(visitor, "name", "all classes", []) == (gr.skip(),) * 5
    classify.classify_sample(studio, visitor, 0, 5, classify.GZSL)  # a new prediction: a new top-k subset
    redrawn = select(visitor, "name", "top-k of the last prediction", [])
    assert len(redrawn[0].data[0].x) == 5
    knowledge.reset_knowledge(studio, visitor, "ApplyLipstick", False)
    *plots, _, _, status = select(visitor, "name", "no such subset", [])
    assert plots == [gr.skip(), gr.skip()] and status.startswith("Unknown subset")  # said, nothing drawn


@needs_demo
def test_uploads_are_classified_a_few_at_a_time_and_edits_beside_them(studio):
    """One classification fills two cores: uploads run `classify_concurrency` at once, every other action keeps
    the general limit, so an edit does not wait behind a crowd of uploads (bench_load: edit p50 at 16 visitors
    1.35 s with 4 uploads at once, 0.34 s with 1)."""
    from app import build_app

    app = build_app(studio, Settings(concurrency=5, classify_concurrency=1))
    limits = {fn.api_name: fn.concurrency_limit for fn in app.fns.values() if fn.api_name}
    assert limits["classify"] == 1
    assert limits["edit"] == limits["classify_sample"] == "default"  # the queue's default_concurrency_limit


@needs_demo
def test_the_knowledge_fan_out_updates_the_prediction_and_leaves_hidden_tabs_to_their_selection(studio):
    from app import build_app

    app = build_app(studio, Settings())
    names = {"edit", "regenerate", "add_class", "undo", "reset", "import_knowledge"}
    changes = {i for i, fn in app.fns.items() if fn.api_name in names}
    assert len(changes) == len(names)
    after = [inspect.unwrap(fn.fn) for fn in app.fns.values() if fn.trigger_after in changes]
    assert after.count(classify.panel) == after.count(inspect.unwrap(knowledge_ab.draw)) == len(changes)
    assert after.count(saved_edits.save) == len(changes)  # and the browser's copy of the edits
    assert len(after) == 3 * len(changes)  # the Classify panel, the A/B panel, the saved edits, nothing else
    selected = [inspect.unwrap(fn.fn) for fn in app.fns.values() if any(e == "select" for _, e in fn.targets)]
    assert inspect.unwrap(heatmaps.draw) in selected and inspect.unwrap(embeddings.draw_tab) in selected


class Recorder:
    """Stands where Gradio injects a `gr.Progress`: hears (fraction, desc) as the handler reports them."""

    def __init__(self):
        self.heard: list[tuple[float, str]] = []

    def __call__(self, fraction, desc=None, **_):
        self.heard.append((fraction, desc))


@needs_demo
@pytest.mark.media  # decodes a real video through the extractor
def test_the_tab_opens_with_a_reference_sample_and_an_upload_says_next_to_its_result_that_it_means_nothing(studio):
    label, notes, bars, modality, zero_shot, details, visitor = classify.first_view(studio, None, 0, 5, classify.GZSL)
    assert notes.startswith("**Source:** reference sample") and classify.MEANS_NOTHING not in notes
    assert details["source"].startswith("reference sample") and len(label) == 5 and zero_shot is None  # no frames
    assert classify.first_view(studio, visitor, 0, 5, classify.GZSL)[:6] == (gr.skip(),) * 6  # a page kept open
    progress = Recorder()
    video = str(Path(__file__).resolve().parents[2] / "assets" / "examples" / "pattern_tone_440.mp4")
    _, notes, *_ = classify.classify(studio, visitor, video, 3, classify.GZSL, progress=progress)
    assert notes.startswith(f"{classify.MEANS_NOTHING}\n\n**Source:** pattern\\_tone\\_440.mp4")
    stages = [desc for i, (_, desc) in enumerate(progress.heard) if i == 0 or desc != progress.heard[i - 1][1]]
    zero_shot = classify.STAGES["zero-shot"]
    assert stages in (
        ["visual features", "audio features", zero_shot],
        [classify.STAGES["networks"], "visual features", "audio features", zero_shot],  # the server's first video
    )


@needs_demo
def test_top_k_follows_any_value_and_stays_within_the_slider(studio):
    *_, visitor = classify.classify_sample(studio, None, 3, 5, classify.GZSL)
    label, *_, details = classify.change_top_k(studio, visitor, 3, classify.GZSL)
    assert len(label) == len(details["gzsl"]) == 3
    label, *_, details = classify.change_top_k(studio, visitor, 50, classify.GZSL)  # typed past the maximum
    assert len(details["gzsl"]) == classify.TOP_K_MAX


@needs_demo
def test_maps_report_each_stage_and_keep_every_class_colour_when_a_class_is_added(studio):
    def colours(maps) -> list[dict[str, str]]:
        return [{t.legendgroup: t.marker.color for t in m.data if t.legendgroup} for m in maps]

    progress = Recorder()
    *maps, _, _, visitor = embeddings.draw(studio, None, "pca", progress=progress)
    stages = [desc for _, desc in progress.heard]
    assert stages[-4:] == [f"computing PCA of the {key} points" for key in ("audio", "visual", "knowledge", "fused")]
    before = colours(maps)
    for one in before[1:]:  # the same class, the same colour, in every map
        assert all(one[c] == before[0][c] for c in set(one) & set(before[0]))
    knowledge.add_class(studio, visitor, "Playing Ukulele")
    after = colours(embeddings.draw(studio, visitor, "pca")[:4])
    assert all(a[c] == b[c] for a, b in zip(after, before, strict=True) for c in b)
    assert "Playing Ukulele" in after[2] and after[2]["Playing Ukulele"] not in before[2].values()
    *maps, _, _, _ = embeddings.draw(studio, visitor, "pca", "Playing Ukulele")  # highlight by name
    assert {t.opacity for t in maps[2].data if t.legendgroup == "Playing Ukulele"} == {1.0}
    assert {t.opacity for t in maps[2].data if t.legendgroup not in ("Playing Ukulele", None)} == {0.15}


@needs_demo
def test_a_class_name_with_markup_is_shown_as_text_in_the_status_line(studio):
    status, *_ = knowledge.add_class(studio, None, "<b>Bold</b> Class")
    assert status.startswith("Added &lt;b&gt;Bold&lt;/b&gt; Class as an unseen class") and "<b>" not in status


def test_the_scorer_follows_space_and_setting(monkeypatch):
    monkeypatch.delenv("KDA_ZERO_SHOT_WEIGHTS", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert Settings.from_env().zero_shot_weights is None  # as the checkpoint's extractor
    monkeypatch.setenv("SPACE_ID", "someone/kda")
    assert Settings.from_env().zero_shot_weights == "pretrained"  # a Space reaches the Hub
    monkeypatch.setenv("KDA_ZERO_SHOT_WEIGHTS", "offline")
    assert Settings.from_env().zero_shot_weights == "offline"
    monkeypatch.setenv("KDA_ZERO_SHOT_WEIGHTS", "real")
    with pytest.raises(SystemExit, match="KDA_ZERO_SHOT_WEIGHTS='real': choose pretrained or offline"):
        Settings.from_env()


@pytest.mark.media
def test_an_upload_gets_zero_shot_scores_beside_kda_and_an_edit_moves_them(studio):
    video = str(DEMO.parents[1] / "assets" / "examples" / "pattern_tone_440.mp4")
    *panel, details, visitor = classify.classify(studio, None, video, 3, classify.GZSL, progress=lambda *a, **k: None)
    zero_shot = panel[4]
    assert len(zero_shot) == 3 and details["zero_shot"]["offline"] and len(details["zero_shot"]["top"]) == 3
    assert list(zero_shot) == [
        f"{t['name']} ({'seen' if t['seen'] else 'unseen'})" for t in details["zero_shot"]["top"]
    ]
    before = visitor.zero_shot
    target = before.class_ids[before.top(1)[0]]
    knowledge.edit(studio, visitor, target, "", *PASTA)  # the fan-out re-scores the visitor's video
    moved = np.flatnonzero(~np.isclose(visitor.zero_shot.cosines, before.cosines, atol=1e-7))
    assert [visitor.zero_shot.class_ids[i] for i in moved] == [target]
    *panel, details, visitor = classify.classify_sample(studio, visitor, 0, 3, classify.GZSL)
    assert panel[4] is None and "zero_shot" not in details  # a reference sample has features, not frames
