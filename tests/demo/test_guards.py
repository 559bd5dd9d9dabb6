"""demo/guards.py without a server: a refusal said once where the person looks (the page) or an error (the API),
one log line for a person's error and a traceback for a bug, and a plain path refused for a file input."""

import logging

import gradio as gr
import pytest

from demo.guards import PLAIN_PATH, FileInputs, misnamed_files, on_page, user_errors
from kda.errors import KdaError


@user_errors
def save(visitor: object, text: str):
    if text == "bug":
        raise ZeroDivisionError("a bug")
    if len(text) > 5:
        raise KdaError(f"the text is {len(text)} characters long; at most 5")
    return "Saved.", text, visitor


PAGE = gr.EventData(target=gr.Button(render=False), _data={})  # an event a button of the page triggered
API = gr.EventData(target=None, _data={})  # an API call: nothing on the page triggered it


def test_a_refusal_on_the_page_is_the_status_line_and_leaves_the_other_outputs():
    handler = on_page(save, 3, status=0)
    assert handler("me", "short", event=PAGE) == ("Saved.", "short", "me")
    assert handler("me", "too long", event=PAGE) == (
        "**Nothing changed:** the text is 8 characters long; at most 5",
        gr.skip(),
        gr.skip(),
    )
    with pytest.raises(gr.Error) as refused:
        handler("me", "too long", event=API)
    assert refused.value.message == "the text is 8 characters long; at most 5"


def test_gradio_passes_the_event_to_the_wrapped_handler():
    from gradio.utils import get_type_hints

    handler = on_page(save, 3, status=0)
    assert get_type_hints(handler)["event"] is gr.EventData  # how Gradio decides to pass it
    assert list(__import__("inspect").signature(handler).parameters) == ["visitor", "text", "event"]


def test_a_persons_error_is_one_log_line_and_a_bug_a_traceback(caplog):
    caplog.set_level(logging.INFO, logger="kda.app")
    with pytest.raises(gr.Error) as refused:
        save("me", "too long")
    assert not refused.value.print_exception  # Gradio prints no traceback either
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("INFO", "save refused: the text is 8 characters long; at most 5", None)
    ]
    caplog.clear()
    with pytest.raises(gr.Error, match=r"Something went wrong in the app \(ZeroDivisionError\)"):
        save("me", "bug")
    assert caplog.records[0].levelname == "ERROR" and caplog.records[0].exc_info is not None


def test_a_plain_path_given_to_a_file_input_is_found_in_either_request_shape():
    found = FileInputs(count=2, positions=[1], api_positions=[0], names=["file"])  # after the state
    inputs = {7: found, "import_knowledge": found}
    queued = {"fn_index": 7, "data": [None, "/etc/hostname"]}
    assert list(misnamed_files("/gradio_api/queue/join", queued, inputs)) == ["/etc/hostname"]
    called = {"data": [None, "/etc/hostname"]}
    assert list(misnamed_files("/gradio_api/call/import_knowledge", called, inputs)) == ["/etc/hostname"]
    without_state = {"data": ["/etc/hostname"]}
    assert list(misnamed_files("/gradio_api/call/import_knowledge", without_state, inputs)) == ["/etc/hostname"]
    by_name = {"file": "/etc/hostname"}
    assert list(misnamed_files("/gradio_api/call/v2/import_knowledge", by_name, inputs)) == ["/etc/hostname"]
    uploaded = {"data": [None, {"path": "/tmp/gradio/x/k.json", "meta": {"_type": "gradio.FileData"}}]}
    assert list(misnamed_files("/gradio_api/call/import_knowledge", uploaded, inputs)) == []
    assert list(misnamed_files("/gradio_api/call/edit", called, inputs)) == []  # a text input may hold any text
    assert "handle_file" in PLAIN_PATH
