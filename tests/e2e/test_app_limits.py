"""The real app (`python app.py`, bundled demo checkpoint) holds what a visitor sends to its caps and says
each refusal once: caps stated in the messages through the API, JSON errors with line and column, the real
reason for a file nested too deeply, duplicate names in the person's words, a plain path for a file input
refused with a message, one log line per refusal; and one visitor's maximal import never stalls another's
edit (asserted by order, not by time: the timing is in bench/bench_app.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

try:
    from app_server import CHECKPOINT, NO_LLM, start_app
except ImportError:  # tests/ imported as a package
    from tests.app_server import CHECKPOINT, NO_LLM, start_app

from kda.knowledge.store import CAPS

pytestmark = pytest.mark.skipif(not CHECKPOINT.is_dir(), reason="no demo checkpoint: run `make checkpoint`")
WORDS = "the quick brown fox jumps over the lazy dog while a drummer plays a loud roll on the snare "


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    server = start_app(tmp_path_factory.mktemp("app") / "app.log", env=NO_LLM)
    yield server
    server.stop()


@pytest.fixture
def client(app, tmp_path):
    return app.client(tmp_path / "downloads")


def refusal(call) -> str:
    with pytest.raises(AppError) as error:
        call()
    return str(error.value)


def exported(client) -> dict:
    return json.loads(Path(client.predict(api_name="/export_knowledge")).read_text())


def edit(client, class_id: str, name: str, *texts: str):
    return client.predict(class_id, name, *texts, "", "", api_name="/edit")[: len(texts)]


def test_names_descriptions_imports_and_added_classes_are_capped_with_the_cap_stated(client, tmp_path):
    before = exported(client)
    message = refusal(lambda: client.predict("Archery", "N" * 10_000, "", "", "", api_name="/edit"))
    assert "is 10,000 characters long; a name may have at most 100" in message
    message = refusal(lambda: client.predict("Archery", "", "d" * 2001, "", "", api_name="/edit"))
    assert "is 2,001 characters long; a description may have at most 2,000" in message
    message = refusal(lambda: client.predict("P" * 101, api_name="/add_class"))
    assert "a name may have at most 100" in message
    big = tmp_path / "big.json"
    knowledge = exported(client)
    knowledge["provenance"]["note"] = "x" * CAPS.import_bytes
    big.write_text(json.dumps(knowledge))
    assert refusal(lambda: client.predict(handle_file(big), api_name="/import_knowledge")) == (
        "big.json is over the 1024 KB limit of a knowledge import"
    )
    assert exported(client) == before  # every refusal left the knowledge as it was


def test_json_errors_name_line_and_column_and_deep_nesting_its_real_reason(client, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "format": "kda-knowledge/1",\n  classes}')
    message = refusal(lambda: client.predict(handle_file(broken), api_name="/import_knowledge"))
    assert (
        message
        == "broken.json is not valid JSON: Expecting property name enclosed in double quotes at line 3, column 3"
    )
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 50_000 + "]" * 50_000)
    message = refusal(lambda: client.predict(handle_file(nested), api_name="/import_knowledge"))
    assert message.startswith("nested.json is nested too deeply to read") and "RecursionError" not in message


def test_a_duplicate_name_is_said_in_the_persons_words(client):
    message = refusal(lambda: client.predict("Apply Eye Makeup", api_name="/add_class"))
    assert message.startswith("there is already a class 'Apply Eye Makeup' (id 'ApplyEyeMakeup')")
    message = refusal(lambda: client.predict("Archery", "Apply Eye Makeup", "", "", "", api_name="/edit"))
    assert message == "'Apply Eye Makeup' is already the name of class 'ApplyEyeMakeup'; pick another name"
    assert "config.json" not in message


def test_an_edit_reports_what_it_did_not_what_another_visitor_had_typed(app, tmp_path):
    alice, bob = app.client(tmp_path / "a"), app.client(tmp_path / "b")
    same = "Both visitors type these very words."
    assert edit(alice, "Archery", "", same)[0] == "Saved Archery: 1 text(s) changed."
    assert edit(bob, "Archery", "", same)[0] == "Saved Archery: 1 text(s) changed."  # not "0 encoded"


def test_a_plain_server_path_for_a_file_input_is_refused_with_a_message(app, client):
    with pytest.raises(httpx.HTTPStatusError) as error:  # refused before Gradio's queue: gradio_client's error
        client.predict("/etc/hostname", api_name="/import_knowledge")
    assert "hostname: this file was not uploaded" in error.value.response.json()["detail"]
    for route, body in [
        ("call/import_knowledge", {"data": ["/etc/hostname"]}),
        ("call/import_knowledge", {"data": ["/etc/hostname", None]}),  # with the saved edits
        ("call/import_knowledge", {"data": [None, "/etc/hostname", None]}),  # the page's shape, the state first
        ("call/v2/import_knowledge", {"file": "/etc/hostname"}),
    ]:
        answer = httpx.post(f"{app.url}gradio_api/{route}", json=body)
        assert answer.status_code == 403 and "hostname: this file was not uploaded" in answer.json()["detail"], body


def test_an_export_lies_in_the_apps_cache_and_the_same_knowledge_is_one_file(app, client):
    cache = app.log.parent / "gradio"
    first = Path(client.predict(api_name="/export_knowledge")).read_text()
    again = Path(client.predict(api_name="/export_knowledge")).read_text()
    # Written into Gradio's cache, where its cleanup (delete_cache) removes it, and served from there.
    assert first == again and [p.read_text() for p in cache.glob("kda-knowledge-*/knowledge.json")] == [first]


def test_each_refusal_is_one_line_in_the_server_log(app, client):
    start = len(app.log.read_text())
    assert "no class named 'Arcery' (did you mean 'Archery'?)" in refusal(
        lambda: client.predict("Arcery", "", "A text.", "", "", api_name="/edit")
    )
    refusal(lambda: client.predict(["Archery"], "Archery", api_name="/regenerate"))  # no LLM configured here
    time.sleep(0.5)
    log = app.log.read_text()[start:]
    assert "Traceback" not in log
    refusals = [line.split(" refused: ")[0].rsplit(" ", 1)[-1] for line in log.splitlines() if " refused: " in line]
    assert refusals == [
        "edit",
        "regenerate_classes",
    ], log


def test_another_visitors_edit_is_served_while_a_maximal_import_is_encoding(app, tmp_path):
    alice, bob = app.client(tmp_path / "a"), app.client(tmp_path / "b")
    knowledge = exported(alice)
    ids = list(knowledge["classes"])
    for i in range(160):  # descriptions at the cap, each new: 160 texts to encode
        text = (f"{i} " + WORDS * 30)[: CAPS.description_chars]
        knowledge["classes"][ids[i % len(ids)]]["descriptions"].append({"aspect": "other", "text": text})
    upload = tmp_path / "maximal.json"
    upload.write_text(json.dumps(knowledge))
    from gradio_client.utils import Status

    importing = alice.submit(handle_file(upload), api_name="/import_knowledge")
    while importing.status().code != Status.PROCESSING:
        assert not importing.done(), importing.result()
        time.sleep(0.05)
    time.sleep(1.0)  # into its encoding
    assert edit(bob, "Bowling", "", "A heavy ball rolls and knocks down ten pins.")[0].startswith("Saved Bowling")
    assert not importing.done()  # Bob was served between two of Alice's batches, not after all of them
    assert importing.result(timeout=600)[0] == "Imported: 48 class(es) changed, 0 added."
