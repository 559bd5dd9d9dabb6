"""Classify tab: a video (a reference sample of the checkpoint's test set, an upload, or an example) -> top-k
among seen and unseen classes, the modality that drove it, its distance to every class, and the notes.

A reference sample leads the tab: its features are the benchmark's own, so its prediction is real even where
uploads go through offline weights (the demo checkpoint), and the page opens with one classified."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from demo import figures
from demo.guards import bind, readable_file, user_errors
from demo.settings import Settings, example_videos
from demo.state import Visitor, markdown_text, prediction_dict
from kda.prediction import OFFLINE_EXTRACTOR, Prediction
from kda.studio import Studio

GZSL, ZSL = "GZSL: all classes", "ZSL: unseen classes only"
TOP_K_MAX = 10
STAGES = {  # the library's progress stages, as a visitor reads them
    "networks": "building the feature extractor's networks (the first video only)",
    "visual": "visual features",
    "audio": "audio features",
    "zero-shot": "zero-shot scores (CLIP on the frames, against each class's name and visual description)",
}
MEANS_NOTHING = (
    "> **This prediction means nothing: demo weights.** Uploaded videos go through an extractor with random "
    "weights on this checkpoint. A reference sample of the test set (at the top of this tab) has the benchmark's own "
    "features: its prediction is the checkpoint's real one."
)


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
    sample: gr.Dropdown
    zero_shot: gr.Label

    @property
    def panel_outputs(self) -> list:
        """What `panel` fills: everything that shows the current prediction."""
        return [self.top, self.notes, self.bars, self.modality, self.zero_shot]


def notes_text(prediction: Prediction) -> str:
    """The notes under the top classes, as Markdown; every text from the video or the knowledge (file and class
    names) shown as text. Where the prediction means nothing, that comes first, next to the result."""
    parts = [f"**Source:** {markdown_text(prediction.source)}"]
    if any(note.code == OFFLINE_EXTRACTOR for note in prediction.notes):
        parts.insert(0, MEANS_NOTHING)
    parts.append(f"**Modalities:** {markdown_text(prediction.modality.summary)}")
    if prediction.notes:
        parts.append("\n".join(f"- {markdown_text(note.message)}" for note in prediction.notes))
    return "\n\n".join(parts)


def panel(visitor: Visitor | None, mode: str) -> tuple:
    """Label, notes, distance bars, modality bars and zero-shot scores for the visitor's last prediction."""
    prediction = visitor.prediction if visitor else None
    if prediction is None:
        return None, "", figures.distance_bars(None), figures.modality_bars(None), None
    zsl = mode == ZSL
    top = prediction.zsl if zsl else prediction.gzsl
    label = {f"{s.name} ({figures.seen_word(s.seen)})": s.score for s in top}
    bars = figures.distance_bars(prediction, zsl)
    return label, notes_text(prediction), bars, figures.modality_bars(prediction), zero_shot_label(visitor, zsl)


def zero_shot_label(visitor: Visitor, zsl: bool) -> dict | None:
    """The training-free scores of the visitor's upload among the same candidates (None for a reference
    sample: it has features, not frames)."""
    scores = visitor.zero_shot
    if scores is None:
        return None
    rows = [i for i in scores.top(len(scores.class_ids)) if not (zsl and scores.seen[i])][: visitor.top_k]
    return {f"{scores.names[i]} ({figures.seen_word(scores.seen[i])})": float(scores.probabilities[i]) for i in rows}


def prediction_json(visitor: Visitor) -> dict | None:
    """The prediction as JSON (the library's one shape), with the zero-shot scores of an upload beside it."""
    data = prediction_dict(visitor.prediction)
    if data is not None and visitor.zero_shot is not None:
        data["zero_shot"] = visitor.zero_shot.to_json(visitor.top_k)
    return data


@user_errors
def classify(studio: Studio, visitor: Visitor | None, video: str | None, top_k: int, mode: str, progress=gr.Progress()):  # noqa: B008 (how Gradio injects a tracker)
    """Classify an uploaded video file."""
    path = readable_file(video)
    visitor = Visitor.start(studio, visitor)

    def report(stage: str, done: int, total: int) -> None:
        name = STAGES.get(stage, stage)
        progress(done / max(total, 1), desc=f"{name} ({done}/{total})" if total > 1 else name)

    prediction = studio.classify(path, visitor.session, top_k=int(top_k), progress=report)
    report("zero-shot", 0, 1)
    visitor.classified(prediction, int(top_k), studio.zero_shot(path, visitor.session))
    return *panel(visitor, mode), prediction_json(visitor), visitor


@user_errors
def classify_sample(studio: Studio, visitor: Visitor | None, index: int, top_k: int, mode: str):
    """Classify one reference sample of the checkpoint's test set, by index (see the dropdown)."""
    if index is None:
        raise gr.Error("Pick a reference sample first.")
    visitor = Visitor.start(studio, visitor)
    visitor.classified(studio.classify_sample(int(index), visitor.session, top_k=int(top_k)), int(top_k))
    return *panel(visitor, mode), prediction_json(visitor), visitor


def first_view(studio: Studio, visitor: Visitor | None, index: int | None, top_k: int, mode: str):
    """What the tab opens with: the chosen reference sample classified, unless the visitor has a prediction
    already (a page kept open) or the checkpoint has no sample."""
    if index is None or (visitor is not None and visitor.prediction is not None):
        return *(gr.skip() for _ in range(6)), visitor
    return classify_sample(studio, visitor, index, top_k, mode)


@user_errors
def change_top_k(studio: Studio, visitor: Visitor | None, top_k: int, mode: str):
    if visitor is not None and visitor.prediction is not None:
        visitor.top_k = min(max(int(top_k), 1), TOP_K_MAX)
        visitor.rescore(studio)
    return *panel(visitor, mode), (prediction_json(visitor) if visitor else None)


def zero_shot_title(studio: Studio) -> str:
    real = "real CLIP weights" if studio.zero_shot_weights == "pretrained" else "offline random weights: means nothing"
    return f"Descriptions alone, no training: CLIP zero-shot on uploads ({real})"


def limits_text(settings: Settings) -> str:
    """What an upload may be, stated before anyone tries."""
    return (
        f"Uploads: video files up to {settings.max_upload_mb:g} MB and {settings.max_video_s:g} s "
        f"({settings.max_video_s / 60:g} min); bigger or longer ones are refused. Within that, a long video is "
        "sampled, and the notes under the result say how."
    )


def sample_picker(studio: Studio, lead: bool) -> tuple[gr.Dropdown, gr.Button]:
    # the values are strings: Gradio documents a dropdown's values as strings, so the API accepts what it documents
    samples = [(text, str(i)) for text, i in studio.sample_choices()] if studio.samples is not None else []
    label = "Start here: a reference sample of the test set (the benchmark's own features)"
    sample = gr.Dropdown(samples, value=samples[0][1] if samples else None, label=label, elem_id="sample-picker")
    button = gr.Button(
        "Classify reference sample", variant="primary" if lead else "secondary", interactive=bool(samples)
    )
    return sample, button


def build(studio: Studio, settings: Settings, state: gr.State) -> ClassifyTab:
    lead = studio.samples is not None and len(studio.samples) > 0  # the sample leads wherever there is one
    with gr.Row(elem_classes="kda-stack"):
        with gr.Column(scale=2, min_width=300):
            if lead:
                sample, run_sample = sample_picker(studio, lead)
            video = gr.Video(label="Or upload a video", sources=["upload"], height=240)
            gr.Markdown(limits_text(settings), elem_id="upload-limits")
            examples = [str(p) for p in example_videos()]
            if examples:
                gr.Examples(examples=examples, inputs=video, label="Example videos (bundled files)")
            run = gr.Button("Classify video", variant="secondary" if lead else "primary")
            if not lead:
                sample, run_sample = sample_picker(studio, lead)
        with gr.Column(scale=3, min_width=300):
            with gr.Row():
                top_k = gr.Slider(1, TOP_K_MAX, value=settings.top_k, step=1, label="Top k")
                mode = gr.Radio([GZSL, ZSL], value=GZSL, label="Candidates")
            top = gr.Label(label="Top classes (score)", elem_id="top-classes")
            zero_shot = gr.Label(label=zero_shot_title(studio), elem_id="zero-shot")
            notes = gr.Markdown(label="Notes on the prediction", elem_id="prediction-notes")
    bars = gr.Plot(label="Distance to every class", elem_id="distance-plot", elem_classes="kda-wide-plot")
    modality = gr.Plot(label="Modality contribution", elem_id="modality-plot")
    details = gr.JSON(label="Prediction as JSON (also what the API returns)", open=False)
    tab = ClassifyTab(video, top_k, mode, top, details, notes, bars, modality, sample, zero_shot)

    # Every handler takes the visitor first (the state first among the inputs; the API never shows it).
    outputs = [*tab.panel_outputs, details, state]
    run.click(
        bind(classify, studio),
        [state, video, top_k, mode],
        outputs,
        api_name="classify",
        concurrency_limit=settings.classify_concurrency,
    )
    run_sample.click(bind(classify_sample, studio), [state, sample, top_k, mode], outputs, api_name="classify_sample")
    mode.change(panel, [state, mode], tab.panel_outputs, api_visibility="private")
    # Every way of setting k counts: dragging (each step), typing a number, the reset button.
    top_k.change(
        bind(change_top_k, studio),
        [state, top_k, mode],
        [*tab.panel_outputs, details],
        api_visibility="private",
        trigger_mode="always_last",
    )
    return tab
