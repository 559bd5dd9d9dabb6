"""Knowledge tab: every class's name and descriptions, editable; regenerate with the LLM; add a class; undo,
reset; import and export. Every change is the visitor's own (their `KnowledgeSession`) and re-scores their
last prediction at once: each change returns it as JSON, and the app shows it in the Classify tab."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from demo import knowledge_ab
from demo.guards import bind, on_page, readable_file, user_errors
from demo.settings import Settings
from demo.state import Visitor, class_choices, markdown_text, prediction_dict
from kda.knowledge import ASPECTS, DEFAULT_MODEL, LLMSettings
from kda.knowledge.store import atomic_write
from kda.studio import Studio

COLUMNS = ["class id", "name", "seen/unseen", "changed", *ASPECTS]


@dataclass
class KnowledgeTab:
    changes: list  # the events that change the knowledge (app.py fans them out to the tabs that depend on it)
    outputs: list  # what a change fills: status line, table, pickers, editor, re-scored prediction, state
    ab: knowledge_ab.ABPanel | None  # the test split under the visitor's knowledge (None without a test split)


def table(visitor: Visitor) -> list[list[str]]:
    session = visitor.session
    changed = set(session.changed())
    rows = []
    for class_id, seen in zip(session.class_ids, session.seen, strict=True):
        entry = session.entry(class_id)
        texts = [d.text for d in entry.descriptions] + [""] * len(ASPECTS)
        mark = "yes" if class_id in changed else ""
        rows.append([class_id, entry.name, "seen" if seen else "unseen", mark, *texts[: len(ASPECTS)]])
    return rows


def editor(visitor: Visitor, class_id: str | None) -> list:
    """Name and one text per aspect of a class (by position, as `session.edit` takes them)."""
    if not class_id or class_id not in visitor.session.knowledge:
        return [""] * (1 + len(ASPECTS))
    entry = visitor.session.entry(class_id)
    texts = [d.text for d in entry.descriptions] + [""] * len(ASPECTS)
    return [entry.name, *texts[: len(ASPECTS)]]


def llm_settings(settings: Settings) -> LLMSettings:
    llm = settings.llm
    if not llm.configured:
        raise gr.Error(llm.describe)
    return LLMSettings(model=llm.model or DEFAULT_MODEL, base_url=llm.base_url, api_key=llm.api_key)


def after(studio: Studio, visitor: Visitor, message: str, class_id: str | None) -> tuple:
    """Outputs of every change: message, table, pickers, editor, re-scored prediction (JSON), state."""
    visitor.rescore(studio)
    class_id = class_id if class_id in visitor.session.knowledge else visitor.session.class_ids[0]
    picks = class_choices(visitor)
    return (
        markdown_text(message),  # it names classes, and a class name is text, never markup
        table(visitor),
        gr.Dropdown(choices=picks, value=class_id),
        gr.Dropdown(choices=picks),
        *editor(visitor, class_id),
        prediction_dict(visitor.prediction),
        visitor,
    )


@user_errors
def edit(
    studio: Studio, visitor: Visitor | None, class_id: str, name: str, introduction: str, visual: str, auditory: str
):
    """Replace one class's name and descriptions (introduction, visual, auditory); re-encodes what changed."""
    visitor = Visitor.start(studio, visitor)
    class_id = visitor.session.knowledge.resolve(class_id or "")
    extra = [d.text for d in visitor.session.entry(class_id).descriptions[len(ASPECTS) :]]
    visitor.session.edit(class_id, [introduction, visual, auditory, *extra], name=name.strip() or None)
    return after(studio, visitor, f"Saved {class_id}: {visitor.session.last_changed} text(s) changed.", class_id)


@user_errors
def regenerate_classes(
    studio: Studio,
    settings: Settings,
    visitor: Visitor | None,
    class_ids: list[str] | None,
    current: str,
    progress=gr.Progress(),  # noqa: B008 (how Gradio injects a tracker)
):
    """Ask the LLM the paper's three questions again for these classes (the editor's class when empty)."""
    visitor = Visitor.start(studio, visitor)
    ids = list(class_ids or ([current] if current else []))
    llm = llm_settings(settings)
    progress(0, desc=f"asking the LLM about {len(ids)} class(es)")
    done = visitor.session.regenerate(ids, llm)
    return after(studio, visitor, f"Regenerated {', '.join(done)} with {llm.model}.", done[0])


@user_errors
def add_class(studio: Studio, visitor: Visitor | None, name: str):
    """Add a new class by name: an unseen candidate at once; describe it in the editor or with the LLM."""
    visitor = Visitor.start(studio, visitor)
    class_id = visitor.session.add_class(name or "")
    return after(studio, visitor, f"Added {class_id} as an unseen class; describe it below or regenerate it.", class_id)


@user_errors
def undo_change(studio: Studio, visitor: Visitor | None, current: str):
    """Take back the last change."""
    visitor = Visitor.start(studio, visitor)
    message = "Took back the last change." if visitor.session.undo() else "Nothing to undo."
    if message == "Nothing to undo.":
        gr.Warning(message)
    return after(studio, visitor, message, current)


@user_errors
def reset_knowledge(studio: Studio, visitor: Visitor | None, class_id: str, everything: bool):
    """Back to the checkpoint's knowledge: one class, or every class (added ones are removed)."""
    visitor = Visitor.start(studio, visitor)
    visitor.session.reset(None if everything else class_id or "")
    message = f"Reset {'every class' if everything else class_id} to the checkpoint's knowledge."
    return after(studio, visitor, message, class_id)


@user_errors
def import_knowledge(studio: Studio, visitor: Visitor | None, file: str | None):
    """Replace the knowledge by an uploaded kda-knowledge/1 JSON file (it must cover every class)."""
    visitor = Visitor.start(studio, visitor)
    result = visitor.session.import_file(readable_file(file, "knowledge file"))
    message = f"Imported: {len(result['changed'])} class(es) changed, {len(result['added'])} added."
    return after(studio, visitor, message, (result["changed"] + result["added"] + [None])[0])


@user_errors
def export_knowledge(studio: Studio, visitor: Visitor | None) -> str:
    """The visitor's knowledge as a kda-knowledge/1 JSON file."""
    visitor = Visitor.start(studio, visitor)
    data = json.dumps(visitor.session.export_json(), indent=2, ensure_ascii=False).encode("utf-8")
    # Written into Gradio's own cache, named by its content: Gradio serves it from there without a copy, and
    # its cache cleanup (`delete_cache`, app.py) removes it; the same knowledge exported again is the same file.
    path = Path(get_upload_folder()) / f"kda-knowledge-{hashlib.sha256(data).hexdigest()[:16]}" / "knowledge.json"
    if not path.is_file():
        atomic_write(path, data)
    return str(path)


def reopen(studio: Studio, visitor: Visitor | None) -> tuple:
    """When the page opens: the knowledge the visitor's session was started with from their browser's saved
    edits, and what that did, in the status line; a visitor without saved edits finds the page as it was built."""
    visitor = Visitor.start(studio, visitor)
    if visitor.restored is None:
        return (*(gr.skip() for _ in range(len(ASPECTS) + 6)), visitor)  # every output of `after` but the state
    message, visitor.restored = visitor.restored, None
    return after(studio, visitor, message, (visitor.session.changed() + [None])[0])


def show(studio: Studio, visitor: Visitor | None, class_id: str) -> list:
    return editor(Visitor.start(studio, visitor), class_id)


def pick_row(studio: Studio, visitor: Visitor | None, event: gr.SelectData) -> tuple:
    visitor = Visitor.start(studio, visitor)
    class_id = event.row_value[0]  # the row's class id (row numbers change with the search box)
    return gr.Dropdown(value=class_id), *editor(visitor, class_id)


def build(studio: Studio, settings: Settings, state: gr.State, prediction: gr.JSON) -> KnowledgeTab:
    """The tab's components and events; `prediction` (the Classify tab's JSON) shows each change's re-scored
    prediction, which is also what the endpoints return last."""
    base = Visitor.start(studio)  # what a new visitor sees before their first change
    if not base.session.editable:
        gr.Markdown(f"**Editing is off for this checkpoint:** {base.session.why_not_editable}")
    gr.Markdown(settings.llm.describe, elem_id="llm-status")
    with gr.Row():
        with gr.Column(scale=3):
            first = base.session.class_ids[0]
            # Custom values reach the handler, which names an unknown class and the close ones (Gradio's own
            # check would answer with all 48 choices and a traceback in the log).
            picker = gr.Dropdown(
                class_choices(base), value=first, label="Class", filterable=True, allow_custom_value=True
            )
            shown = editor(base, first)
            name = gr.Textbox(shown[0], label="Name (encoded as the first text)", max_lines=1)
            aspects = [
                gr.Textbox(t, label=f"{a.capitalize()} description", lines=2)
                for a, t in zip(ASPECTS, shown[1:], strict=True)
            ]
            with gr.Row():
                save = gr.Button("Save edit", variant="primary")
                undo = gr.Button("Undo last change")
            with gr.Row():
                everything = gr.Checkbox(label="every class (added classes are removed)")
                reset = gr.Button("Reset to the checkpoint's knowledge")
        with gr.Column(scale=2):
            targets = gr.Dropdown(
                class_choices(base),
                multiselect=True,
                allow_custom_value=True,
                label="Classes to regenerate with the LLM",
            )
            regenerate = gr.Button(
                "Regenerate descriptions (the paper's three questions)",
                interactive=settings.llm.configured,  # the reason is the LLM line above when it is not
            )
            new_name = gr.Textbox(label="New class name", placeholder="e.g. Playing Ukulele", max_lines=1)
            add = gr.Button("Add class (an unseen candidate at once)")
            export = gr.Button("Export knowledge as JSON")
            exported = gr.File(label="Exported knowledge", interactive=False, height=90)
            upload = gr.File(label="Import knowledge (kda-knowledge/1 JSON)", file_types=[".json"], height=120)
            load = gr.Button("Import")
    status = gr.Markdown(label="What the change did", elem_id="knowledge-status")
    ab = knowledge_ab.build(studio)  # right under the change's message, where its effect on the benchmark shows
    overview = gr.Dataframe(
        table(base),
        headers=COLUMNS,
        interactive=False,
        wrap=True,
        show_search="search",
        column_widths=["11%", "11%", "7%", "7%", "21%", "21%", "22%"],
        label="Every class (click a row to edit it)",
    )

    # Every handler takes the visitor first (the state first among the inputs; the API never shows it). A
    # refusal is said in the status line, the first output, and leaves the others as they were (`on_page`);
    # the status line alone shows that a change is running.
    changed = [status, overview, picker, targets, name, *aspects, prediction, state]

    def change(button, handler, inputs, api_name, *first):
        handler = bind(on_page(handler, len(changed), status=0), studio, *first)
        return button.click(handler, inputs, changed, api_name=api_name, show_progress_on=[status])

    events = [
        change(save, edit, [state, picker, name, *aspects], "edit"),
        change(regenerate, regenerate_classes, [state, targets, picker], "regenerate", settings),
        change(add, add_class, [state, new_name], "add_class"),
        change(undo, undo_change, [state, picker], "undo"),
        change(reset, reset_knowledge, [state, picker, everything], "reset"),
        change(load, import_knowledge, [state, upload], "import_knowledge"),
    ]
    export.click(bind(export_knowledge, studio), [state], exported, api_name="export_knowledge")
    picker.input(bind(show, studio), [state, picker], [name, *aspects], api_visibility="private")
    overview.select(bind(pick_row, studio), [state], [picker, name, *aspects], api_visibility="private")
    return KnowledgeTab(events, changed, ab)
