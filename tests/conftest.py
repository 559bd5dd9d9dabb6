import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def ucf_synth(tmp_path_factory):
    """A small synthetic UCF-GZSL root in the cls setting (knowledge_vectors.npz inside)."""
    from kda.synth import SynthConfig, write_synthetic_benchmark

    root = tmp_path_factory.mktemp("ucf_synth")
    write_synthetic_benchmark(root, "UCF", "cls", SynthConfig(train_videos=8, eval_videos=4))
    return root


@pytest.fixture(scope="session")
def media_files(tmp_path_factory):
    """Every media test case made once with ffmpeg (tests/media_factory.py), by case name."""
    from media_factory import make_all

    return make_all(tmp_path_factory)
