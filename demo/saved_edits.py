"""A visitor's edits kept in their own browser, so that what ends a session on the server does not lose them: the
session's time-to-live, a restart of the server, a reload of the page.

The page keeps the classes the visitor changed or added (`KnowledgeSession.edits_json`) in a `gr.BrowserState`
(the browser's localStorage, one entry per checkpoint knowledge), written after every knowledge change. Every
event that reads the visitor sends them back as its last input (an optional last parameter of each endpoint: an
API caller may send its own edits the same way, or leave it out), and a visitor the server no longer has starts
again from them (`Visitor.start`), so what the server computes is what the page shows. What that start did is
said once: on the Knowledge tab when the page opens, else as a notice by the event that met it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable

import gradio as gr

from demo.state import Visitor
from kda.studio import Studio

EDITS = "saved_edits"  # the parameter every endpoint that reads the visitor takes last


def storage(studio: Studio) -> gr.BrowserState | None:
    """The browser-side store of the checkpoint's visitors' edits (None where the knowledge cannot be edited).
    Its key is the checkpoint's knowledge, so another checkpoint's edits are never offered to this one."""
    if not studio.base.editable:
        return None
    knowledge = json.dumps(studio.base.export_json(), sort_keys=True).encode()
    key = f"kda-edits-{hashlib.sha256(knowledge).hexdigest()[:16]}"
    # Gradio encrypts the stored value with `secret` and sends that secret to the page: it hides nothing from the
    # visitor, whose own edits these are. A fixed one (Gradio's default is random per start) keeps them
    # readable after a restart.
    return gr.BrowserState(None, storage_key=key, secret=key)


def save(visitor: Visitor) -> dict | None:
    """What the browser keeps after a knowledge change."""
    return visitor.session.edits_json()


def remember(blocks: gr.Blocks, studio: Studio, state: gr.State, saved: gr.BrowserState) -> None:
    """Make every event of `blocks` that reads the visitor (`state`) also read the saved edits and write the
    visitor back: called once the page's events are all registered, so no tab has to know about it."""
    for fn in blocks.fns.values():
        if fn.fn is None or state not in fn.inputs or saved in fn.outputs:
            continue
        returns_state = state in fn.outputs
        fn.fn = restoring(fn.fn, studio, fn.inputs.index(state), len(fn.inputs), returns_state, len(fn.outputs))
        # New lists: a tab may hand the same list to several events.
        fn.inputs = [*fn.inputs, saved]
        if fn.input_parameter_names:  # the API's parameter names, read at registration
            fn.input_parameter_names = [*fn.input_parameter_names, EDITS]
        if not returns_state:
            fn.outputs = [*fn.outputs, state]


def restoring(
    handler: Callable, studio: Studio, position: int, inputs: int, returns_state: bool, outputs: int
) -> Callable:
    """`handler` (given its `inputs` values, the visitor at `position`) taking the saved edits after them: a
    visitor the server no longer has is started from those edits, said once, and returned as the state output
    (appended when `handler` has none; it returns `outputs` values)."""
    signature = inspect.signature(handler)
    params = list(signature.parameters.values())
    edits = inspect.Parameter(EDITS, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)

    @functools.wraps(handler)
    def run(*args, **kwargs):
        args = list(args)
        saved = args.pop(inputs) if len(args) > inputs else kwargs.pop(EDITS, None)
        visitor = args[position] = Visitor.start(studio, args[position], saved)
        result = handler(*args, **kwargs)
        if visitor.restored:  # not said by the handler (the Knowledge tab says it when the page opens)
            (gr.Warning if visitor.restore_failed else gr.Info)(visitor.restored)
            visitor.restored = None
        if returns_state:
            return result
        return (*(result if outputs > 1 else (result,)), visitor)

    # The saved edits come right after the inputs, before what Gradio injects (progress, event data), which it
    # finds by annotation or default whatever their defaults: an optional parameter can come only before them.
    injected = [p.replace(default=None) if p.default is p.empty else p for p in params[inputs:]]
    run.__signature__ = signature.replace(parameters=[*params[:inputs], edits, *injected])
    run.__annotations__ = {**handler.__annotations__, EDITS: dict | None}
    return run
