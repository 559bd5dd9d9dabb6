"""What `kda space` puts in a Space, decided offline from a checkout: the app's files and nothing else, and a
README made of the project's front matter (the upload itself: tests/e2e/test_space_app.py)."""

import re

import pytest

from kda.hub import HubError
from kda.space import front_matter, make_space, space_files, space_readme

CHECKOUT = {
    "app.py": "",
    "requirements.txt": "gradio==1.0\n",
    "packages.txt": "ffmpeg\n",
    "README.md": "---\ntitle: KDA Studio\nsdk: gradio\n---\n\n# KDA Studio\n",
    "kda/__init__.py": "",
    "kda/split_roles/ucf.json": "{}",
    "kda/__pycache__/space.cpython-311.pyc": "",
    "kda/media/.DS_Store": "",
    "demo/classify.py": "",
    "demo/old.pyc": "",
    "assets/examples/clip.mp4": "video",
    "assets/knowledge/ucf.json": "{}",
    "tests/test_app.py": "",
    "bench/bench_train.py": "",
    "checkpoints/demo-ucf-cls/config.json": "{}",
    "docs/METHOD.md": "",
    ".cache/x": "",
}


@pytest.fixture
def checkout(tmp_path):
    for path, text in CHECKOUT.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


def test_a_space_holds_the_app_its_library_and_examples_and_nothing_else(checkout):
    files = space_files(checkout)
    assert sorted(files) == [
        "app.py",
        "assets/examples/clip.mp4",
        "demo/classify.py",
        "kda/__init__.py",
        "kda/split_roles/ucf.json",  # package data the library reads
        "packages.txt",
        "requirements.txt",
    ]
    assert all(local == checkout / path for path, local in files.items())


def test_a_folder_without_the_app_is_not_a_checkout(checkout):
    (checkout / "app.py").unlink()
    with pytest.raises(HubError, match="is not a KDA Studio checkout"):
        space_files(checkout)


def test_the_readme_is_the_projects_front_matter_linked_to_the_checkpoint(checkout):
    pinned = "hf-hub:me/model@" + "a" * 40
    readme = space_readme(checkout, pinned, "https://hub.example")
    assert readme.startswith("---\ntitle: KDA Studio\nsdk: gradio\nmodels:\n- me/model\n---\n\n# KDA Studio\n")
    assert f"[me/model](https://hub.example/me/model) at commit `{'a' * 40}`" in readme
    assert f"`KDA_CHECKPOINT={pinned}`" in readme


@pytest.mark.parametrize("text", ["# no front matter\n", "---\ntitle: x\n"])
def test_a_readme_without_front_matter_is_refused(text):
    with pytest.raises(HubError, match="must open with the Space's front matter"):
        front_matter(text)


@pytest.mark.parametrize(
    ("space", "checkpoint", "message"),
    [
        ("noslash", "hf-hub:me/model", "`space` 'noslash' must be OWNER/NAME"),
        ("me/studio", "hf-hub:a/b/c", "`checkpoint` 'a/b/c' must be OWNER/NAME"),
        ("me/studio", "runs/ucf-cls/paper", "must be a Hub id, hf-hub:OWNER/NAME[@REVISION]; upload a local"),
    ],
)
def test_bad_ids_are_refused_before_any_request(space, checkpoint, message):
    with pytest.raises(HubError, match=re.escape(message)):
        make_space(space, checkpoint)
