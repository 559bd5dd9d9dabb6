"""The Hugging Face Space: its configuration agrees with itself (README front matter, requirements pins and
packages.txt, which a Space builds from), and `kda space` makes one on the loopback Hub (tests/hub_server.py)
that holds exactly the app's files, pins the checkpoint, and starts from those files alone in a fresh venv."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from app_server import fresh_venv, start_app
from hub_server import COMMIT, TOKEN, LoopbackHub, hub_env

from kda.space import space_files

ROOT = Path(__file__).resolve().parents[2]
SPACE, MODEL = "someone/kda-studio", "someone/kda-tiny"
GZSL = "GZSL: all classes"


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


# -- `kda space` on the loopback Hub ---------------------------------------------------------------------------------


def kda_space(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "kda", "space", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def hub(tiny_checkpoint, tmp_path_factory):
    """A loopback Hub holding the tiny checkpoint as MODEL (at COMMIT) and an empty model repository, running
    for the module; `kda space` has made SPACE on it."""
    empty = tmp_path_factory.mktemp("empty")
    hub = LoopbackHub({MODEL: tiny_checkpoint, "someone/not-a-checkpoint": empty})
    with hub as endpoint:
        hub.endpoint, hub.env = endpoint, hub_env(endpoint, tmp_path_factory.mktemp("hf"), TOKEN)
        hub.made = kda_space(hub.env, SPACE, "--checkpoint", f"hf-hub:{MODEL}")
        assert hub.made.returncode == 0, hub.made.stderr[-3000:]
        yield hub


def test_space_holds_exactly_the_app_and_pins_the_checkpoint(hub):
    files = hub.files("space", SPACE)
    local = space_files(ROOT)
    assert sorted(files) == sorted([*local, "README.md", ".gitattributes"])
    assert all(files[path] == file.read_bytes() for path, file in local.items())
    assert {"app.py", "requirements.txt", "packages.txt", "demo/classify.py", "kda/split_roles/ucf.json"} <= set(files)
    assert any(path.startswith("assets/examples/") and path.endswith(".mp4") for path in files)
    assert not [p for p in files if p.startswith(("tests/", "bench/", "checkpoints/", "docs/")) or "__pycache__" in p]
    pinned = f"hf-hub:{MODEL}@{COMMIT}"  # the head of main when it was made: a later push does not change it
    assert hub.repo("space", SPACE).variables["KDA_CHECKPOINT"]["value"] == pinned
    readme = files["README.md"].decode()
    project = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.startswith(project[: project.index("\n---\n", 4)] + f"\nmodels:\n- {MODEL}\n---\n")
    assert f"`KDA_CHECKPOINT={pinned}`" in readme
    lines = hub.made.stdout.splitlines()
    assert lines[-1] == f"{hub.endpoint}/spaces/{SPACE}"  # alone on the last line, for scripts
    assert lines[0].startswith(f"Space {SPACE} at commit ") and lines[0].endswith(f"KDA_CHECKPOINT={pinned}")


def test_running_it_again_updates_the_space_and_drops_what_the_app_no_longer_has(hub):
    space = hub.repo("space", SPACE)
    sha, files = space.commits[-1]
    space.commits.append(("f" * 40, files | {"demo/retired.py": b"# a module the app had once\n"}))
    again = kda_space(hub.env, SPACE, "--checkpoint", f"hf-hub:{MODEL}@{COMMIT}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert hub.files("space", SPACE) == files  # the retired module deleted, the Hub's .gitattributes kept
    assert len(space.commits) == 4  # created, first upload, the stand-in's edit, this update: one commit each


@pytest.mark.parametrize(
    ("checkpoint", "message"),
    [
        ("hf-hub:someone/no-such-model", "cannot find checkpoint someone/no-such-model ("),
        (f"hf-hub:{MODEL}@no-such-branch", f"cannot find checkpoint {MODEL} at no-such-branch ("),
        ("hf-hub:someone/not-a-checkpoint", "someone/not-a-checkpoint at "),
        ("checkpoints/demo-ucf-cls", "must be a Hub id, hf-hub:OWNER/NAME[@REVISION]; upload a local checkpoint"),
    ],
)
def test_a_checkpoint_the_hub_does_not_have_is_refused_before_anything_is_made(hub, checkpoint, message):
    done = kda_space(hub.env, "someone/other-space", "--checkpoint", checkpoint)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kda space: error: ") and message in lines[0], done.stderr
    assert ("space", "someone/other-space") not in hub.repos


def test_not_a_kda_checkpoint_names_what_is_missing(hub):
    done = kda_space(hub.env, "someone/other-space", "--checkpoint", "hf-hub:someone/not-a-checkpoint")
    assert done.stderr.strip().endswith("is not a KDA checkpoint: it has no config.json or model.safetensors")


# -- the Space's files alone start the app ------------------------------------------------------------------------

DOWNLOAD_SPACE = """
import sys
from huggingface_hub import snapshot_download
snapshot_download(sys.argv[1], repo_type="space", local_dir=sys.argv[2])
"""
REQUIREMENTS_MET = """
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
for line in open("requirements.txt"):
    line = line.split("#")[0].strip()
    if line:
        wanted = Requirement(line)
        try:
            found = version(wanted.name)
        except PackageNotFoundError:
            found = None
        if found is None or not wanted.specifier.contains(found, prereleases=True):
            print(wanted, "found", found)
"""


def in_venv(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_space_files_alone_start_the_app_on_the_pinned_checkpoint(hub, tmp_path):
    folder = tmp_path / "space"
    fetched = subprocess.run([sys.executable, "-c", DOWNLOAD_SPACE, SPACE, str(folder)], env=hub.env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    python = fresh_venv(tmp_path / "venv")
    outside = in_venv(python, "import kda", tmp_path)
    assert outside.returncode == 1 and "No module named 'kda'" in outside.stderr  # the project is not installed
    inside = in_venv(python, "import demo, kda; print(kda.__path__[0]); print(demo.__path__[0])", folder)
    assert inside.returncode == 0, inside.stderr[-3000:]
    assert inside.stdout.split() == [str(folder / "kda"), str(folder / "demo")]  # both from the Space's files
    assert in_venv(python, REQUIREMENTS_MET, folder).stdout == ""  # the Space's requirements.txt is satisfied

    variables = {key: v["value"] for key, v in hub.repo("space", SPACE).variables.items()}  # what the Space sets
    home = tmp_path / "hf-space"
    env = hub_env(hub.endpoint, home) | variables | {"PYTHONPATH": ""}
    with pytest.MonkeyPatch.context() as patch:  # the app's environment is this one plus `env`: no HF_ leaks in
        for key in [k for k in os.environ if k.startswith("HF_")]:
            patch.delenv(key)
        server = start_app(tmp_path / "app.log", env=env, python=str(python), folder=folder)
    try:
        prediction = server.client().predict("0", 5, GZSL, api_name="/classify_sample")[-1]
    finally:
        server.stop()
    assert prediction["source"].startswith("reference sample") and len(prediction["gzsl"]) == 5
    assert (home / "hub" / f"models--{MODEL.replace('/', '--')}" / "snapshots" / COMMIT / "config.json").is_file()
    assert (MODEL, "model.safetensors") in hub.downloads
