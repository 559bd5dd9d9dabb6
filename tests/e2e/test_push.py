"""`kda push` for real, against the loopback Hub (tests/hub_server.py): the command in a subprocess, the real
huggingface_hub client making the repository and the commit (small files inline, weights through the LFS batch
API and its upload URL), and what was pushed downloading back byte-identical at the commit it printed."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from hub_server import TOKEN, LoopbackHub, hub_env

ROOT = Path(__file__).resolve().parents[2]
REPO = "someone/kda-tiny"

DOWNLOAD = """
import sys
from huggingface_hub import snapshot_download
snapshot_download(sys.argv[1], revision=sys.argv[2], local_dir=sys.argv[3])
"""
RESOLVE = """
import sys
from kda.checkpoint import load_checkpoint, resolve
for location in sys.argv[1:]:
    load_checkpoint(location)
    print(resolve(location))
"""


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def push(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run(["-m", "kda", "push", str(folder), "--repo", REPO], env)


def files_below(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path, leaving out huggingface_hub's own bookkeeping (.cache/)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }


def test_pushed_folder_downloads_back_byte_identical_at_the_printed_commit(tiny_checkpoint, tmp_path):
    folder = shutil.copytree(tiny_checkpoint, tmp_path / "ck")
    hub = LoopbackHub()
    with hub as endpoint:
        env = hub_env(endpoint, tmp_path / "hf", TOKEN)
        done = push(folder, env)
        assert done.returncode == 0, done.stderr[-3000:]
        head = hub.repo("model", REPO).commits[-1][0]
        fetched = run(["-c", DOWNLOAD, REPO, head, str(tmp_path / "back")], env)
        assert fetched.returncode == 0, fetched.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == f"uploaded {folder} to {endpoint}/{REPO} (commit {head}); open it with:"
    assert lines[-1] == f"hf-hub:{REPO}@{head}"  # alone on the last line, for scripts
    back = files_below(tmp_path / "back")
    assert back.pop(".gitattributes")  # the file the Hub puts in every new repository
    assert back == files_below(folder) and "README.md" in back  # the model card went up with the checkpoint
    modes = {path: mode for _, path, mode in hub.uploads}
    assert modes["model.safetensors"] == modes["samples.safetensors"] == "lfs"  # weights through LFS
    assert modes["config.json"] == modes["README.md"] == "inline"


def test_a_pinned_id_keeps_loading_what_was_pushed_then(tiny_checkpoint, tmp_path):
    folder = shutil.copytree(tiny_checkpoint, tmp_path / "ck")
    hub = LoopbackHub()
    with hub as endpoint:
        env = hub_env(endpoint, tmp_path / "hf", TOKEN)
        first = push(folder, env)
        old = (folder / "config.json").read_bytes()
        config = json.loads(old)
        (folder / "config.json").write_text(json.dumps(config | {"beta": config["beta"] + 1.0}))
        uploaded_before = len(hub.uploads)
        second = push(folder, env)
        assert first.returncode == second.returncode == 0, second.stderr[-3000:]
        pins = [first.stdout.splitlines()[-1], second.stdout.splitlines()[-1]]
        resolved = run(["-c", RESOLVE, *pins, f"hf-hub:{REPO}"], env)
        assert resolved.returncode == 0, resolved.stderr[-3000:]
    assert pins[0] != pins[1]
    then, now, head = (Path(line) for line in resolved.stdout.splitlines())
    assert (then / "config.json").read_bytes() == old
    assert (
        (now / "config.json").read_bytes()
        == (folder / "config.json").read_bytes()
        == (head / "config.json").read_bytes()
    )
    # The second commit sent only what changed: the weights were already there.
    assert sorted(path for _, path, _ in hub.uploads[uploaded_before:]) == ["README.md", "config.json"]


def test_push_without_a_token_is_one_line_naming_the_login(tiny_checkpoint, tmp_path):
    folder = shutil.copytree(tiny_checkpoint, tmp_path / "ck")
    hub = LoopbackHub()
    with hub as endpoint:
        done = push(folder, hub_env(endpoint, tmp_path / "hf"))  # no HF_TOKEN, and no saved token in this HF_HOME
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"kda push: error: cannot upload {folder} to {REPO} (")
    assert "`hf auth login` or set HF_TOKEN" in lines[0] and not hub.repos


def test_an_unknown_revision_is_one_line_naming_it(tiny_checkpoint, tmp_path):
    hub = LoopbackHub({REPO: tiny_checkpoint})
    with hub as endpoint:
        done = run(["-m", "kda", "info", "--checkpoint", f"hf-hub:{REPO}@no-such-branch"], hub_env(endpoint, tmp_path))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"kda info: error: cannot fetch checkpoint {REPO} at revision no-such-branch from the Hugging Face Hub ("
    ), done.stderr
