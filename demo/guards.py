"""What every handler needs before it touches the library: the library's errors as UI messages, and a check
that a file a caller names is one the app may read (an upload, or one of the app's own examples)."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from demo.settings import EXAMPLES_DIR
from kda.errors import KdaError

log = logging.getLogger("kda.app")


def user_errors(handler: Callable) -> Callable:
    """Turn the library's errors into `gr.Error` with its message (shown in the UI, returned through the
    API); anything else is logged and reported without internals. The visitor's state is left as it was:
    a failed library call changes nothing, and a raising handler returns no new state."""

    @functools.wraps(handler)
    def run(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except KdaError as e:
            raise gr.Error(without_upload_folder(str(e)), print_exception=False) from e
        except Exception as e:
            log.exception("%s failed", handler.__name__)
            raise gr.Error(
                f"Something went wrong in the app ({type(e).__name__}); the server log has the details. "
                "Your edits are kept."
            ) from e

    return run


def without_upload_folder(message: str) -> str:
    """The message with uploaded files named by their file name only: the server's folders are not the
    visitor's business."""
    for folder in {get_upload_folder(), str(Path(get_upload_folder()).resolve())}:
        message = re.sub(re.escape(folder.rstrip("/")) + r"/(?:[^/\s]+/)*", "", message)
    return message


def readable_file(path: str | None, what: str = "video") -> Path:
    """The path of an uploaded file or a bundled example; anything else (a server path typed into the API,
    a link) is refused, so API callers cannot make the app read the server's files."""
    if not path:
        raise gr.Error(f"Upload a {what} first (or pick an example).")
    resolved = Path(path).resolve()
    roots = (Path(get_upload_folder()).resolve(), EXAMPLES_DIR.resolve())
    if not any(resolved.is_relative_to(root) for root in roots) or not resolved.is_file():
        raise gr.Error(f"This {what} was not uploaded to the app; upload the file itself instead of naming a path.")
    return resolved
