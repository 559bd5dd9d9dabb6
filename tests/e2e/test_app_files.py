"""The real app refuses every file a visitor did not upload, in every shape a client can name one, before
Gradio's preprocessing copies (or downloads) it: raw HTTP to each file-taking endpoint and route, and
gradio_client. Each refusal carries a message, the server keeps serving, and nothing lands in its cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

try:
    from app_server import CHECKPOINT, NO_LLM, ROOT, start_app
except ImportError:  # tests/ imported as a package
    from tests.app_server import CHECKPOINT, NO_LLM, ROOT, start_app

GZSL = "GZSL: all classes"
EXAMPLES = ROOT / "assets" / "examples"
NOT_UPLOADED = "was not uploaded to the app; upload the file itself"
NO_URLS = "the app does not fetch files from URLs"
FILE_ENDPOINTS = {  # every endpoint that takes a file: its inputs around the file reference
    "classify": lambda file: [file, 5, GZSL],
    "import_knowledge": lambda file: [file],
}

pytestmark = pytest.mark.skipif(not CHECKPOINT.is_dir(), reason="no demo checkpoint: run `make checkpoint`")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    server = start_app(tmp_path_factory.mktemp("app") / "app.log", env=NO_LLM)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cache(app) -> Path:
    """The app's upload folder and cache (GRADIO_TEMP_DIR, set by start_app)."""
    return app.log.parent / "gradio"


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A real video on the server, outside every folder the app may read."""
    folder = tmp_path_factory.mktemp("outside")
    video = folder / "private.mp4"
    shutil.copy(EXAMPLES / "no_audio.mp4", video)
    return video


def file_data(path: str, **extra) -> dict:
    """A file reference as gradio_client sends one for an upload."""
    return {"path": path, "meta": {"_type": "gradio.FileData"}, **extra}


def shapes(outside: Path, cache: Path) -> dict[str, tuple[object, str]]:
    """Every way of naming a server file: name -> (file reference, the refusal it gets)."""
    link = cache / "planted" / "link.mp4"  # a link inside the upload folder that points out of it
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(outside)
    relative = os.path.relpath(outside, ROOT)  # the app's working directory is the repository
    up_to_root = "../" * (len(cache.parts) - 1)
    return {
        "absolute": (file_data(str(outside)), NOT_UPLOADED),
        "without meta": ({"path": str(outside)}, NOT_UPLOADED),
        "with orig_name": (file_data(str(outside), orig_name="holiday.mp4", size=10), NOT_UPLOADED),
        "relative": (file_data(relative), NOT_UPLOADED),
        "dot-dot out of the upload folder": (file_data(f"{cache}/../{relative}"), NOT_UPLOADED),
        "dot-dot from the upload folder to the server's files": (
            file_data(f"{cache}/{up_to_root}etc/hostname"),
            NOT_UPLOADED,
        ),
        "url-encoded": (file_data(str(outside).replace("/", "%2F")), NOT_UPLOADED),
        "symlink in the upload folder": (file_data(str(link)), NOT_UPLOADED),
        "the examples folder's parent": (file_data(str(ROOT / "assets" / "knowledge" / "ucf.json")), NOT_UPLOADED),
        "the examples folder's README": (file_data(str(EXAMPLES / "README.md")), NOT_UPLOADED),
        "a server file": (file_data("/etc/hostname"), NOT_UPLOADED),
        "a video component's own shape": ({"video": file_data(str(outside)), "subtitles": None}, NOT_UPLOADED),
        "a url": (file_data("http://127.0.0.1:9/private.mp4"), NO_URLS),
        "a file url": (file_data(f"file://{outside}"), NO_URLS),
    }


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def sample_works(app) -> bool:
    """The server still answers: a reference sample is classified through the API."""
    client = app.client()
    prediction = client.predict("0", 5, GZSL, api_name="/classify_sample")[-1]
    return len(prediction["gzsl"]) == 5


def test_every_shape_of_server_path_is_refused_by_every_file_endpoint(app, cache, outside):
    before = files_under(cache)
    for endpoint, inputs in FILE_ENDPOINTS.items():
        for shape, (file, expected) in shapes(outside, cache).items():
            answer = httpx.post(f"{app.url}gradio_api/call/{endpoint}", json={"data": inputs(file)}, timeout=30)
            assert answer.status_code == 403, (endpoint, shape, answer.text)
            assert expected in answer.json()["detail"], (endpoint, shape, answer.text)
    assert files_under(cache) == before  # nothing was copied into the app's cache
    assert app.alive() and sample_works(app)


def test_the_pages_own_routes_refuse_server_paths_too(app, cache, outside):
    config = httpx.get(f"{app.url}config", timeout=10).json()
    ids = {d.get("api_name"): d["id"] for d in config["dependencies"]}
    before = files_under(cache)
    for endpoint, inputs in FILE_ENDPOINTS.items():
        data = inputs(file_data(str(outside)))
        join = {"data": [*data, None], "fn_index": ids[endpoint], "session_hash": "guarded", "trigger_id": None}
        for route, body in (("gradio_api/queue/join", join), (f"gradio_api/run/{endpoint}", {"data": data})):
            answer = httpx.post(f"{app.url}{route}", json=body, timeout=30)
            assert answer.status_code == 403 and NOT_UPLOADED in answer.json()["detail"], (route, answer.text)
    assert files_under(cache) == before
    assert sample_works(app)


def test_gradio_client_cannot_make_the_server_fetch_a_url(app, cache):
    before = files_under(cache)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        app.client().predict(file_data("http://127.0.0.1:9/private.mp4"), 5, GZSL, api_name="/classify")
    assert refused.value.response.status_code == 403 and NO_URLS in refused.value.response.json()["detail"]
    assert files_under(cache) == before
    assert sample_works(app)


def test_uploads_and_the_example_videos_are_accepted(app):
    from gradio_client import handle_file

    client = app.client()
    uploaded = client.predict(handle_file(EXAMPLES / "bars_chirp.mp4"), 3, GZSL, api_name="/classify")[-1]
    assert uploaded["source"] == "bars_chirp.mp4"
    example = str(EXAMPLES / "no_audio.mp4")  # named by its path on the server, as the page's examples are
    answer = httpx.post(
        f"{app.url}gradio_api/call/classify", json={"data": [file_data(example), 3, GZSL, None]}, timeout=30
    )
    assert answer.status_code == 200
    events = httpx.get(f"{app.url}gradio_api/call/classify/{answer.json()['event_id']}", timeout=120).text
    assert events.startswith("event: complete") and '"source": "no_audio.mp4"' in events


def test_only_the_example_videos_are_served_from_the_examples_folder(app):
    def status(path: Path | str) -> int:
        return httpx.get(f"{app.url}gradio_api/file={path}", timeout=10).status_code

    videos = sorted(EXAMPLES.glob("*.mp4"))
    assert videos and all(status(v) == 200 for v in videos)
    for other in (EXAMPLES / "README.md", EXAMPLES / "make_examples.py", CHECKPOINT / "config.json", "/etc/hostname"):
        assert status(other) == 403, other
    assert status(str(EXAMPLES / "README.md").replace("/", "%2F")) == 403
