"""Knowledge tab: every class's name and descriptions, editable; regenerate with the LLM; add a class; undo,
reset; import and export. Every change is the visitor's own (their `KnowledgeSession`) and re-scores their
last prediction at once."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from demo.classify import ClassifyTab, prediction_dict
from demo.guards import readable_file, user_errors
from demo.settings import Settings
from demo.state import Visitor
from kda.knowledge import ASPECTS, DEFAULT_MODEL, LLMSettings
from kda.studio import Studio

COLUMNS = ["class id", "name", "seen/unseen", "changed", *ASPECTS]


@dataclass
class KnowledgeTab:
    changes: list  # the events after which everything that depends on the knowledge is redrawn


def table(visitor: Visitor) -> list[list[str]]:
    session = visitor.session
    changed = set(session.knowledge.changed())
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


def choices(visitor: Visitor) -> list[tuple[str, str]]:
    session = visitor.session
    return [
        (f"{n} ({'seen' if s else 'unseen'})", c)
        for c, n, s in zip(session.class_ids, session.names, session.seen, strict=True)
    ]


def llm_settings(settings: Settings) -> LLMSettings:
    llm = settings.llm
    if not llm.configured:
        raise gr.Error(llm.describe)
    return LLMSettings(model=llm.model or DEFAULT_MODEL, base_url=llm.base_url, api_key=llm.api_key)


def build(studio: Studio, settings: Settings, state: gr.State, classify: ClassifyTab) -> KnowledgeTab:
    base = Visitor.start(studio)  # what a new visitor sees before their first change
    if not base.session.editable:
        gr.Markdown(f"**Editing is off for this checkpoint:** {base.session.why_not_editable}")
    gr.Markdown(settings.llm.describe, elem_id="llm-status")
    with gr.Row():
        with gr.Column(scale=3):
            first = base.session.class_ids[0]
            picker = gr.Dropdown(choices(base), value=first, label="Class", filterable=True)
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
            targets = gr.Dropdown(choices(base), multiselect=True, label="Classes to regenerate with the LLM")
            regenerate = gr.Button("Regenerate descriptions (the paper's three questions)")
            new_name = gr.Textbox(label="New class name", placeholder="e.g. Playing Ukulele", max_lines=1)
            add = gr.Button("Add class (an unseen candidate at once)")
            export = gr.Button("Export knowledge as JSON")
            exported = gr.File(label="Exported knowledge", interactive=False, height=90)
            upload = gr.File(label="Import knowledge (kda-knowledge/1 JSON)", file_types=[".json"], height=120)
            load = gr.Button("Import")
    status = gr.Markdown(elem_id="knowledge-status")
    overview = gr.Dataframe(
        table(base),
        headers=COLUMNS,
        interactive=False,
        wrap=True,
        show_search="search",
        column_widths=["11%", "11%", "7%", "7%", "21%", "21%", "22%"],
        label="Every class (click a row to edit it)",
    )

    def after(visitor: Visitor, message: str, class_id: str | None):
        """Outputs of every change: message, table, pickers, editor, re-scored prediction, state."""
        visitor.rescore(studio)
        class_id = class_id if class_id in visitor.session.knowledge else visitor.session.class_ids[0]
        picks = choices(visitor)
        return (
            message,
            table(visitor),
            gr.Dropdown(choices=picks, value=class_id),
            gr.Dropdown(choices=picks),
            *editor(visitor, class_id),
            prediction_dict(visitor.prediction),
            visitor,
        )

    changed = [status, overview, picker, targets, name, *aspects, classify.details, state]

    @user_errors
    def edit(class_id: str, name: str, introduction: str, visual: str, auditory: str, visitor: Visitor | None):
        """Replace one class's name and descriptions (introduction, visual, auditory); re-encodes what changed."""
        visitor = Visitor.start(studio, visitor)
        class_id = visitor.session.knowledge.resolve(class_id or "")
        extra = [d.text for d in visitor.session.entry(class_id).descriptions[len(ASPECTS) :]]
        visitor.session.edit(class_id, [introduction, visual, auditory, *extra], name=name.strip() or None)
        return after(visitor, f"Saved {class_id}: {visitor.session.last_encoded} text(s) encoded.", class_id)

    @user_errors
    def regenerate_classes(class_ids: list[str] | None, current: str, visitor: Visitor | None, progress=gr.Progress()):  # noqa: B008 (how Gradio injects a tracker)
        """Ask the LLM the paper's three questions again for these classes (the editor's class when empty)."""
        visitor = Visitor.start(studio, visitor)
        ids = list(class_ids or ([current] if current else []))
        llm = llm_settings(settings)
        progress(0, desc=f"asking the LLM about {len(ids)} class(es)")
        done = visitor.session.regenerate(ids, llm)
        return after(visitor, f"Regenerated {', '.join(done)} with {llm.model}.", done[0])

    @user_errors
    def add_class(name: str, visitor: Visitor | None):
        """Add a new class by name: an unseen candidate at once; describe it in the editor or with the LLM."""
        visitor = Visitor.start(studio, visitor)
        class_id = visitor.session.add_class(name or "")
        return after(visitor, f"Added {class_id} as an unseen class; describe it below or regenerate it.", class_id)

    @user_errors
    def undo_change(current: str, visitor: Visitor | None):
        """Take back the last change."""
        visitor = Visitor.start(studio, visitor)
        message = "Took back the last change." if visitor.session.undo() else "Nothing to undo."
        if message == "Nothing to undo.":
            gr.Warning(message)
        return after(visitor, message, current)

    @user_errors
    def reset_knowledge(class_id: str, everything: bool, visitor: Visitor | None):
        """Back to the checkpoint's knowledge: one class, or every class (added ones are removed)."""
        visitor = Visitor.start(studio, visitor)
        visitor.session.reset(None if everything else class_id or "")
        return after(
            visitor, f"Reset {'every class' if everything else class_id} to the checkpoint's knowledge.", class_id
        )

    @user_errors
    def import_knowledge(file: str | None, visitor: Visitor | None):
        """Replace the knowledge by an uploaded kda-knowledge/1 JSON file (it must cover every class)."""
        visitor = Visitor.start(studio, visitor)
        text = readable_file(file, "knowledge file").read_text(encoding="utf-8", errors="replace")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise gr.Error(
                f"The file is not JSON ({e.msg} at line {e.lineno}); export the knowledge for an example."
            ) from e
        result = visitor.session.import_json(data)
        message = f"Imported: {len(result['changed'])} class(es) changed, {len(result['added'])} added."
        return after(visitor, message, (result["changed"] + result["added"] + [None])[0])

    @user_errors
    def export_knowledge(visitor: Visitor | None) -> str:
        """The visitor's knowledge as a kda-knowledge/1 JSON file."""
        visitor = Visitor.start(studio, visitor)
        folder = Path(tempfile.mkdtemp(prefix="kda-knowledge-"))
        path = folder / "knowledge.json"
        path.write_text(json.dumps(visitor.session.export_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        return str(path)

    def show(class_id: str, visitor: Visitor | None):
        return editor(Visitor.start(studio, visitor), class_id)

    def pick_row(visitor: Visitor | None, event: gr.SelectData):
        visitor = Visitor.start(studio, visitor)
        class_id = event.row_value[0]  # the row's class id (row numbers change with the search box)
        return gr.Dropdown(value=class_id), *editor(visitor, class_id)

    events = [
        save.click(edit, [picker, name, *aspects, state], changed, api_name="edit"),
        regenerate.click(regenerate_classes, [targets, picker, state], changed, api_name="regenerate"),
        add.click(add_class, [new_name, state], changed, api_name="add_class"),
        undo.click(undo_change, [picker, state], changed, api_name="undo"),
        reset.click(reset_knowledge, [picker, everything, state], changed, api_name="reset"),
        load.click(import_knowledge, [upload, state], changed, api_name="import_knowledge"),
    ]
    export.click(export_knowledge, [state], exported, api_name="export_knowledge")
    picker.input(show, [picker, state], [name, *aspects], api_visibility="private")
    overview.select(pick_row, [state], [picker, name, *aspects], api_visibility="private")
    return KnowledgeTab(events)
