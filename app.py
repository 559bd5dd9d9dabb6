"""KDA Studio: classify videos among seen and unseen classes, edit the class knowledge and watch predictions
move, inspect similarity and margin heatmaps and embedding maps of a pretrained KDA checkpoint.

    python app.py [--checkpoint PATH|hf-hub:OWNER/NAME[@REVISION]] [--host 127.0.0.1] [--port 7860]

The same file runs unchanged as a Hugging Face Space. Every computation is a call into `kda`; the UI lives in
`demo/` (one module per tab) and settings come from the environment (`demo/settings.py`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from demo import classify, embeddings, heatmaps, knowledge, saved_edits
from demo.guards import FileGuard, bind
from demo.settings import DEFAULT_CHECKPOINT, ROOT, Settings, example_videos
from demo.state import Visitor
from kda.device import resolve_device
from kda.errors import KdaError
from kda.media.decode import DEFAULT_LIMITS
from kda.studio import Studio

CSS = """
#banner, #prediction-notes blockquote {border-left: 6px solid #E69F00; padding: 0.5em 1em; background: rgba(230, 159, 0, 0.12)}
/* Dense plots (a bar or a row per class) keep a readable width: a narrow screen scrolls them sideways. */
.kda-wide-plot {overflow-x: auto}
.kda-wide-plot [data-testid=plotly] {min-width: 720px}
/* Side-by-side rows stack on a phone, each plot the screen's width. */
@media (max-width: 720px) {
  .kda-stack, .kda-plots {flex-direction: column}
  .kda-stack > *, .kda-plots > * {min-width: 100% !important}
}
"""
# Plotly sizes a plot to its container when drawn or when the window resizes, and skips hidden ones: a plot
# drawn (or a window resized) while its tab was hidden keeps a wrong width. Selecting a tab resizes its plots.
RESIZE_ON_SELECT = "() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 50); }"
INTRO = (
    "# KDA Studio\nKnowledge-augmented audio-visual zero-shot video classification (Chen et al., 2023): a video "
    "is matched against LLM-written knowledge of every class, so classes never seen in training are recognised "
    "from their descriptions alone. Edit the knowledge and watch the prediction move. Your edits are yours alone, and "
    "your browser keeps them."
)


def build_app(studio: Studio, settings: Settings) -> gr.Blocks:
    ckpt = studio.checkpoint
    with gr.Blocks(title="KDA Studio", delete_cache=settings.delete_cache) as app:
        gr.Markdown(INTRO)
        gr.Markdown(
            f"Checkpoint: {len(ckpt.classes)} classes ({int(ckpt.seen_mask.sum())} seen), "
            f"{ckpt.setting} features, text encoder `{ckpt.text_encoder}`."
        )
        if studio.banner:
            gr.Markdown(f"**Demo weights.** {studio.banner}", elem_id="banner")
        state = gr.State(None, time_to_live=settings.session_ttl_s)  # one demo.state.Visitor per browser session
        with gr.Tabs() as tabs:
            with gr.Tab("Classify"):
                classify_tab = classify.build(studio, settings, state)
            with gr.Tab("Knowledge"):
                knowledge_tab = knowledge.build(studio, settings, state, classify_tab.details)
            with gr.Tab("Heatmaps") as heatmaps_page:
                heatmaps_tab = heatmaps.build(studio, state)
            with gr.Tab("Embeddings") as embeddings_page:
                embeddings_tab = embeddings.build(studio, state)
        pages = {"heatmaps": (heatmaps_page, heatmaps_tab), "embeddings": (embeddings_page, embeddings_tab)}
        saved = saved_edits.storage(studio)
        knowledge_changed(studio, state, saved, knowledge_tab, classify_tab, pages)
        tabs.select(None, js=RESIZE_ON_SELECT)
        # When the page opens, one after another (they share the visitor): the knowledge as the browser kept it,
        # the first reference sample classified with it, the A/B panel under it.
        opened = app.load(bind(knowledge.reopen, studio), [state], knowledge_tab.outputs, api_visibility="private")
        first = [state, classify_tab.sample, classify_tab.top_k, classify_tab.mode]
        shown = [*classify_tab.panel_outputs, classify_tab.details, state]
        opened = opened.then(bind(classify.first_view, studio), first, shown, api_visibility="private")
        if knowledge_tab.ab is not None:  # that event is also the `/knowledge_ab` endpoint
            opened.then(bind(knowledge_tab.ab.draw, studio), [state], knowledge_tab.ab.outputs, api_name="knowledge_ab")
        if saved is not None:
            saved_edits.remember(app, studio, state, saved)
    return app


def knowledge_changed(
    studio: Studio,
    state: gr.State,
    saved: gr.BrowserState | None,
    knowledge_tab: knowledge.KnowledgeTab,
    classify_tab: classify.ClassifyTab,
    pages: dict[str, tuple],
) -> None:
    """The one fan-out after the events that change a visitor's knowledge (`knowledge_tab.changes`) to what
    depends on it: the browser's copy of the edits (`saved`, where the knowledge can be edited), the Classify
    panel, the Knowledge tab's own A/B panel (where the checkpoint has a test split), and `pages` (name -> (its
    gr.Tab, the tab with its draw, inputs and outputs)).

    The rule, the same for every tab: what is on screen updates with the change; a hidden tab is not drawn (no
    work for what nobody sees) but is stale from then on, and redraws when it is next selected. (A plot that
    is drawn while hidden, the Classify panel's, is resized to its container when its tab is selected:
    RESIZE_ON_SELECT.) Stale means `Visitor.stale`: the tab last drew from an older knowledge version or an older
    prediction, so classifying a video (or a new top-k) makes the maps and the top-k heatmap stale the same
    way. A tab that is not stale keeps its figures when selected again, zoom included.

    A knowledge change is made on the Knowledge tab, so that is the tab on screen, and its outputs are the
    change's result: the table, the editor and the re-scored prediction (what the API returns). The Classify
    panel shows that same prediction, the one thing an edit changes that a visitor watches, so it updates with
    the change rather than waiting to be selected: it is the change's result, not a drawing of the knowledge."""
    for change in knowledge_tab.changes:
        if saved is not None:  # the browser keeps the visitor's edits (demo.saved_edits)
            change.success(saved_edits.save, [state], [saved], api_visibility="private")
        change.success(classify.panel, [state, classify_tab.mode], classify_tab.panel_outputs, api_visibility="private")
        if knowledge_tab.ab is not None:  # on the tab on screen, so drawn with the change
            change.success(
                bind(knowledge_tab.ab.draw, studio), [state], knowledge_tab.ab.outputs, api_visibility="private"
            )
    for name, (page, tab) in pages.items():
        handler = bind(when_stale(name, tab.draw, len(tab.outputs)), studio)
        page.select(handler, tab.inputs, tab.outputs, api_visibility="private")


def when_stale(tab: str, draw: Callable, outputs: int) -> Callable:
    """`draw` (a tab's handler, taking (studio, visitor, ...)) as that tab's select handler: it draws the tab
    only when it is stale, then records what it drew from; otherwise it leaves every output as it is."""

    @functools.wraps(draw)
    def redraw(studio: Studio, visitor: Visitor | None, *args, **kwargs):
        visitor = Visitor.start(studio, visitor)
        if not visitor.stale(tab):
            return tuple(gr.skip() for _ in range(outputs))
        stamp = visitor.stamp  # read before drawing: a change made meanwhile leaves the tab stale
        drawn = draw(studio, visitor, *args, **kwargs)
        visitor.drew(tab, stamp)
        return drawn

    return redraw


def checkpoint_location(value: str) -> str:
    """An `hf-hub:` id as is; a relative folder from the working directory, else from the repository."""
    if value.startswith("hf-hub:") or Path(value).exists():
        return value
    return str(ROOT / value) if (ROOT / value).exists() else value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        default=os.environ.get("KDA_CHECKPOINT", DEFAULT_CHECKPOINT),
        help="folder or hf-hub:OWNER/NAME[@REVISION] (env KDA_CHECKPOINT; a Space made by `kda space` sets it)",
    )
    parser.add_argument(
        "--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to listen on"
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), help="port to listen on"
    )
    parser.add_argument(
        "--device", default=os.environ.get("KDA_DEVICE", "auto"), help="auto, cpu, cuda or cuda:N (env KDA_DEVICE)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # The app's own log says one line per refused request and a traceback per bug; libraries stay at warnings.
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("kda.app").setLevel(logging.INFO)
    settings = Settings.from_env()
    limits = dataclasses.replace(
        DEFAULT_LIMITS, max_duration_s=settings.max_video_s, max_bytes=settings.max_upload_bytes
    )
    try:
        studio = Studio.load(
            checkpoint_location(args.checkpoint),
            limits=limits,
            device=resolve_device(args.device),
            zero_shot_weights=settings.zero_shot_weights,
        )
    except KdaError as e:
        raise SystemExit(f"app.py: cannot load checkpoint {args.checkpoint!r}: {e}") from None
    # The example videos are served from where they lie (not copied into the cache), and they alone: the
    # folder's README and script are not.
    gr.set_static_paths([str(p) for p in example_videos()])
    app = build_app(studio, settings)
    app.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    app.launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=settings.max_upload_bytes,
        app_kwargs={
            "middleware": [Middleware(FileGuard, blocks=app)]
        },  # uploads and example videos only, checked first
        css=CSS,
        prevent_thread_lock=True,  # serving: now warm up, then wait as launch would
    )
    threading.Thread(target=warm_up, args=(studio,), name="kda-warm-up", daemon=True).start()
    app.block_thread()


def warm_up(studio: Studio) -> None:
    """Once the page answers, build the networks a first upload would wait for (the page is ready first: the
    start stays fast). A failure is left for that upload to report to its visitor."""
    log = logging.getLogger("kda.app")
    start = time.perf_counter()
    try:
        studio.warm_up()
    except Exception as e:  # noqa: BLE001 (any reason: the first classification meets it again and says it)
        log.warning("warm-up failed, the first video will try again: %s", e)
        return
    log.info("warm: the extractor's networks and the zero-shot scorer are built (%.1f s)", time.perf_counter() - start)


if __name__ == "__main__":
    main()
