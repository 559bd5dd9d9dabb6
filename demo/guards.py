"""What every handler needs around it: binding to what the page was built with (`bind`), the library's errors
as UI messages (`user_errors`), said once where the person looks (`on_page`), and the rule for which files a
visitor may make the app read (an upload, or one of the bundled example videos), applied twice: by `FileGuard`
in front of Gradio, before its preprocessing copies or downloads anything, and by `readable_file` in the
handlers themselves."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from demo.settings import MAX_REQUEST_BYTES, example_videos
from kda.errors import KdaError

log = logging.getLogger("kda.app")


def bind(handler: Callable, *first) -> Callable:
    """`handler` with its first arguments given (the studio, the settings), for Gradio to call with the rest.

    A function rather than a `functools.partial`, because Gradio reads three things off the function it calls:
    the docstring (the endpoint's description in the API page), the signature without the bound arguments
    (the API's parameter names, and where to inject a `gr.Progress` default) and the type hints (a
    `gr.SelectData` parameter). A partial shows none of them."""
    signature = inspect.signature(handler)

    @functools.wraps(handler)
    def bound(*args, **kwargs):
        return handler(*first, *args, **kwargs)

    bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[len(first) :])
    return bound


def user_errors(handler: Callable) -> Callable:
    """Turn the library's errors into `gr.Error` with its message (shown in the UI, returned through the
    API); anything else is a bug, logged with its traceback and reported without internals. A person's error
    is one line in the server log. The visitor's state is left as it was: a failed library call changes
    nothing, and a raising handler returns no new state."""

    @functools.wraps(handler)
    def run(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error as e:
            refused(handler, e)
            raise
        except KdaError as e:
            error = gr.Error(without_upload_folder(str(e)), print_exception=False)
            refused(handler, error)
            raise error from e
        except Exception as e:
            log.exception("%s failed", handler.__name__)
            raise gr.Error(
                f"Something went wrong in the app ({type(e).__name__}); the server log has the details. "
                "Your edits are kept.",
                print_exception=False,  # logged just above, with its traceback
            ) from e

    return run


def refused(handler: Callable, error: gr.Error) -> None:
    """Log a refusal of a person's request as one line (a traceback is for bugs), and keep Gradio from
    printing one too."""
    error.print_exception = False
    log.info("%s refused: %s", handler.__name__, error.message)


def on_page(handler: Callable, outputs: int, status: int | None = None, say: bool = True) -> Callable:
    """`handler` (wrapped in `user_errors`) for an event that is also a named API endpoint. Called by the
    page (a component triggered the event), a refusal is said once where the person looks: as the text of
    output `status` (a status line) when there is one, else as a warning (unless `say` is False: another
    event of the same click says it), and the other outputs stay as they were (an error would mark every one
    of them with a lasting "Error" badge). Called through the API (nothing triggered it), the refusal stays an
    error with its message."""
    signature = inspect.signature(handler)
    position = len(signature.parameters)  # Gradio passes the event positionally, after every other argument
    event = inspect.Parameter("event", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.EventData)

    @functools.wraps(handler)
    def run(*args, **kwargs):
        event = kwargs.pop("event", args[position] if len(args) > position else None)
        try:
            return handler(*args[:position], **kwargs)
        except gr.Error as e:
            if event is None or event.target is None:
                raise
            if status is None and say:
                gr.Warning(e.message)
            return tuple(f"**Nothing changed:** {e.message}" if i == status else gr.skip() for i in range(outputs))

    run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), event])
    run.__annotations__ = {**handler.__annotations__, "event": gr.EventData}  # how Gradio knows to pass it
    return run


def without_upload_folder(message: str) -> str:
    """The message with uploaded files named by their file name only: the server's folders are not the
    visitor's business."""
    for folder in {get_upload_folder(), str(Path(get_upload_folder()).resolve())}:
        message = re.sub(re.escape(folder.rstrip("/")) + r"/(?:[^/\s]+/)*", "", message)
    return message


# ---------------------------------------------------------------------------------------------
# Which files a visitor may name


def refusal(path: object, what: str = "file") -> str | None:
    """Why the app must not read `path`, or None when it may: a regular file inside Gradio's upload folder, or
    one of the bundled example videos. Decided on the path alone (symlinks followed, so a link in the upload
    folder that points out is refused); nothing is opened."""
    if not isinstance(path, str) or not path.strip():
        return f"name the {what} by the path an upload returned"
    name = Path(path).name or path
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path):  # http:, https:, file:, data:...: the server fetches nothing
        return f"{name}: the app does not fetch files from URLs; upload the {what} itself"
    resolved = Path(os.path.abspath(path)).resolve()
    upload_folder = Path(get_upload_folder()).resolve()
    examples = {p.resolve() for p in example_videos()}
    if resolved in examples or (resolved.is_relative_to(upload_folder) and resolved.is_file()):
        return None
    return (
        f"{name}: this {what} was not uploaded to the app; upload the file itself (gradio_client's handle_file "
        "does) or pick a bundled example"
    )


def readable_file(path: str | None, what: str = "video") -> Path:
    """The path of an uploaded file or a bundled example video; anything else (a server path typed into the
    API, a link, a URL) is refused, so API callers cannot make the app read the server's files."""
    if not path:
        raise gr.Error(f"Upload a {what} first (or pick an example).", print_exception=False)
    reason = refusal(path, what)
    if reason:
        raise gr.Error(f"{reason}.", print_exception=False)
    return Path(path).resolve()


def file_paths(data: object) -> Iterator[object]:
    """The `path` of every file reference (a JSON object with a "path" key) anywhere in a request body."""
    if isinstance(data, dict):
        if "path" in data:
            yield data["path"]
        for value in data.values():
            yield from file_paths(value)
    elif isinstance(data, list):
        for value in data:
            yield from file_paths(value)


PLAIN_PATH = (
    "a file input takes the reference an upload returned ({'path': ..., 'meta': {'_type': 'gradio.FileData'}}, "
    "as gradio_client's handle_file makes), not a plain path"
)


def takes_files(component) -> bool:
    """Whether an input component's value is a file reference (gr.File, gr.Video, ...)."""
    model = getattr(component, "data_model", None)
    return model is not None and "FileData" in json.dumps(model.model_json_schema())


@dataclass(frozen=True)
class FileInputs:
    """Where an event's file inputs are in each shape of request: among all its inputs (the page, the queue), among
    those the API shows (a REST call leaves out the state), and by parameter name (a REST v2 call)."""

    count: int  # the event's inputs
    positions: list[int]
    api_positions: list[int]
    names: list[str]


def file_inputs(blocks) -> dict[int | str, FileInputs]:
    """Event id and API name -> where that event's file inputs are."""
    table: dict[int | str, FileInputs] = {}
    for fn_id, fn in blocks.fns.items():
        positions = [i for i, component in enumerate(fn.inputs) if takes_files(component)]
        if not positions or fn.fn is None:
            continue
        shown = [i for i, component in enumerate(fn.inputs) if not component.skip_api]
        names = list(inspect.signature(fn.fn).parameters)
        found = FileInputs(
            len(fn.inputs), positions, [shown.index(i) for i in positions if i in shown], [names[i] for i in positions]
        )
        table[fn_id] = found
        if fn.api_name:
            table[fn.api_name] = found
    return table


def misnamed_files(path: str, data: object, inputs: dict[int | str, FileInputs]) -> Iterator[object]:
    """What a request gives its file inputs instead of a file reference (a plain path string, a number).
    The event is named by `fn_index` in the body (the queue) or by the API name ending the URL path."""
    if not isinstance(data, dict):
        return
    found = inputs.get(data["fn_index"] if "fn_index" in data else path.rstrip("/").rsplit("/", 1)[-1])
    if found is None:
        return
    values = data.get("data")
    if isinstance(values, list):
        positions = found.positions if len(values) == found.count else found.api_positions
        given = [values[i] for i in positions if i < len(values)]
    else:  # /call/v2/NAME: parameters by name
        given = [data[name] for name in found.names if name in data]
    yield from (value for value in given if not isinstance(value, dict | list | None))


class FileGuard:
    """ASGI middleware in front of the Gradio app. Every JSON request (the API calls and the page's own
    events) is read whole, up to MAX_REQUEST_BYTES, and refused with a message when it names a file the app
    may not read (`refusal`), or gives a file input a plain path instead of an upload's reference. Gradio's
    preprocessing would otherwise copy the named file into its cache, or download a URL, before any handler
    runs; its own checks refuse server paths and plain strings but answer `{"error": null}`. `blocks` (the
    app) tells which inputs take files."""

    def __init__(self, app, blocks=None):
        self.app = app
        self.file_inputs = file_inputs(blocks) if blocks is not None else {}

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers") or [])
        is_json = headers.get(b"content-type", b"").split(b";")[0].strip() == b"application/json"
        if scope["type"] != "http" or scope["method"] != "POST" or not is_json:
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_REQUEST_BYTES:
                return await refuse(send, 413, f"the request is over the {MAX_REQUEST_BYTES // 2**20} MB limit")
        try:
            data = json.loads(body or b"null")
        except ValueError:
            data = None  # not ours to judge: Gradio answers malformed JSON itself
        reasons = [(path, refusal(path)) for path in file_paths(data)]
        misnamed = misnamed_files(scope.get("path", ""), data, self.file_inputs)
        reasons += [(value, refusal(value) or PLAIN_PATH) for value in misnamed]  # even an upload's own path
        for path, reason in reasons:
            if reason:
                log.info("refused a request naming %r: %s", path, reason)
                return await refuse(send, 403, reason)

        replayed = False

        async def replay():  # the body once, then the client's own messages (a disconnect)
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def refuse(send, status: int, message: str) -> None:
    """A JSON error answer in FastAPI's shape, {"detail": message}."""
    payload = json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
