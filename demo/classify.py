"""Classify tab: a video (uploaded, an example, or a reference sample of the checkpoint's test set) -> top-k
among seen and unseen classes, the modality that drove it, its distance to every class, and the notes."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from demo import figures
from demo.guards import bind, readable_file, user_errors
from demo.settings import Settings, example_videos
from demo.state import Visitor, prediction_dict
from kda.studio import Studio

GZSL, ZSL = "GZSL: all classes", "ZSL: unseen classes only"


@dataclass
class ClassifyTab:
    video: gr.Video
    top_k: gr.Slider
    mode: gr.Radio
    top: gr.Label
    details: gr.JSON
    notes: gr.Markdown
    bars: gr.Plot
    modality: gr.Plot

    @property
    def panel_outputs(self) -> list:
        """What `panel` fills: everything that shows the current prediction."""
        return [self.top, self.notes, self.bars, self.modality]


def panel(visitor: Visitor | None, mode: str) -> tuple:
    """Label, notes, distance bars and modality bars for the visitor's last prediction."""
    prediction = visitor.prediction if visitor else None
    if prediction is None:
        return None, "", figures.distance_bars(None), figures.modality_bars(None)
    zsl = mode == ZSL
    top = prediction.zsl if zsl else prediction.gzsl
    label = {f"{s.name} ({figures.seen_word(s.seen)})": s.score for s in top}
    parts = [f"**Source:** {prediction.source}", f"**Modalities:** {prediction.modality.summary}"]
    if prediction.notes:
        parts.append("\n".join(f"- {note.message}" for note in prediction.notes))
    return label, "\n\n".join(parts), figures.distance_bars(prediction, zsl), figures.modality_bars(prediction)


@user_errors
def classify(studio: Studio, visitor: Visitor | None, video: str | None, top_k: int, mode: str, progress=gr.Progress()):  # noqa: B008 (how Gradio injects a tracker)
    """Classify an uploaded video file."""
    path = readable_file(video)
    visitor = Visitor.start(studio, visitor)

    def report(stage: str, done: int, total: int) -> None:
        progress(done / max(total, 1), desc=f"{stage} ({done}/{total})")

    prediction = studio.classify(path, visitor.session, top_k=int(top_k), progress=report)
    visitor.classified(prediction, int(top_k))
    return *panel(visitor, mode), prediction_dict(prediction), visitor


@user_errors
def classify_sample(studio: Studio, visitor: Visitor | None, index: int, top_k: int, mode: str):
    """Classify one reference sample of the checkpoint's test set, by index (see the dropdown)."""
    if index is None:
        raise gr.Error("Pick a reference sample first.")
    visitor = Visitor.start(studio, visitor)
    visitor.classified(studio.classify_sample(int(index), visitor.session, top_k=int(top_k)), int(top_k))
    return *panel(visitor, mode), prediction_dict(visitor.prediction), visitor


@user_errors
def change_top_k(studio: Studio, visitor: Visitor | None, top_k: int, mode: str):
    if visitor is not None and visitor.prediction is not None:
        visitor.top_k = int(top_k)
        visitor.rescore(studio)
    return *panel(visitor, mode), prediction_dict(visitor.prediction if visitor else None)


def build(studio: Studio, settings: Settings, state: gr.State) -> ClassifyTab:
    with gr.Row():
        with gr.Column(scale=2):
            video = gr.Video(label="Video", sources=["upload"], height=280)
            examples = [str(p) for p in example_videos()]
            if examples:
                gr.Examples(examples=examples, inputs=video, label="Example videos (bundled files)")
            run = gr.Button("Classify video", variant="primary")
            samples = studio.sample_choices() if studio.samples is not None else []
            sample = gr.Dropdown(
                samples, value=samples[0][1] if samples else None, label="Reference sample of the test set"
            )
            run_sample = gr.Button("Classify reference sample", interactive=bool(samples))
        with gr.Column(scale=3):
            with gr.Row():
                top_k = gr.Slider(1, 10, value=settings.top_k, step=1, label="Top k")
                mode = gr.Radio([GZSL, ZSL], value=GZSL, label="Candidates")
            top = gr.Label(label="Top classes (score)", elem_id="top-classes")
            notes = gr.Markdown(elem_id="prediction-notes")
    bars = gr.Plot(label="Distance to every class")
    modality = gr.Plot(label="Modality contribution")
    details = gr.JSON(label="Prediction as JSON (also what the API returns)", open=False)
    tab = ClassifyTab(video, top_k, mode, top, details, notes, bars, modality)

    # Every handler takes the visitor first (the state first among the inputs; the API never shows it).
    outputs = [*tab.panel_outputs, details, state]
    run.click(bind(classify, studio), [state, video, top_k, mode], outputs, api_name="classify")
    run_sample.click(bind(classify_sample, studio), [state, sample, top_k, mode], outputs, api_name="classify_sample")
    mode.change(panel, [state, mode], tab.panel_outputs, api_visibility="private")
    top_k.release(
        bind(change_top_k, studio), [state, top_k, mode], [*tab.panel_outputs, details], api_visibility="private"
    )
    return tab
