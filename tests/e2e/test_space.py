"""The Hugging Face Space configuration agrees with itself: README front matter, requirements pins and
packages.txt (a Space builds from exactly these files)."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def front_matter() -> dict[str, str]:
    """The README's YAML front matter as flat `key: value` pairs (all a Space's config uses here)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must start with the Space's front matter (---)"
    block = text[4 : text.index("\n---\n", 4)]
    pairs = (line.split(":", 1) for line in block.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip().strip("\"'") for key, value in pairs}


def pins(path: str) -> dict[str, str]:
    """Exact `name==version` pins of a requirements file, by lower-case name."""
    found = {}
    for line in (ROOT / path).read_text().splitlines():
        if m := re.match(r"^\s*([A-Za-z0-9_.\[\]-]+)\s*==\s*([^\s#;]+)", line):
            found[m.group(1).split("[")[0].lower()] = m.group(2)
    return found


def test_front_matter_declares_a_gradio_space():
    meta = front_matter()
    assert meta["sdk"] == "gradio"
    assert meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).is_file()
    assert meta["title"] == "KDA Studio"  # the Space's name: the app's and the README heading's
    assert re.fullmatch(r"3\.\d+", meta["python_version"]), meta["python_version"]


def test_sdk_version_is_the_pinned_gradio():
    meta, required = front_matter(), pins("requirements.txt")
    assert "gradio" in required, "requirements.txt must pin gradio exactly (gradio==X.Y.Z) for the Space"
    assert meta["sdk_version"] == required["gradio"]


def test_pinned_gradio_is_the_one_installed():
    import gradio

    assert gradio.__version__ == pins("requirements.txt")["gradio"], "reinstall: make setup"


def test_python_version_is_one_this_project_supports():
    meta = front_matter()
    major, minor = map(int, meta["python_version"].split("."))
    assert (major, minor) >= (3, 10)  # pyproject's requires-python
    assert sys.version_info >= (3, 10)


def test_packages_txt_installs_ffmpeg():
    packages = (ROOT / "packages.txt").read_text().split()
    assert "ffmpeg" in packages


def test_readme_keeps_its_content_below_the_front_matter():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text[text.index("\n---\n", 4) + 5 :]
    assert "make app" in body and "# KDA Studio" in body
