import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")
# One thread for torch and BLAS: the tests' models are small, and on a 2-core machine two threads each made the
# fast loop about twice as slow (117 s against 64 s); subprocesses inherit it. Set it to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from llm_server import pytest_runtest_makereport  # noqa: E402, F401 (a hook: reports name a dead LLM server)

pytest_plugins = ["pytester"]  # test_llm_server.py runs a failing test in an inner pytest


@pytest.fixture(scope="session")
def ucf_synth(tmp_path_factory):
    """A small synthetic UCF-GZSL root in the cls setting (knowledge_vectors.npz inside)."""
    from kda.synth import SynthConfig, write_synthetic_benchmark

    root = tmp_path_factory.mktemp("ucf_synth")
    write_synthetic_benchmark(root, "UCF", "cls", SynthConfig(train_videos=8, eval_videos=4))
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(ucf_synth, tmp_path_factory):
    """A checkpoint trained one epoch on `ucf_synth`, with a reference sample (one video per class), so the app
    can classify without a video. Tests that change it work on a copy."""
    from kda.cli import main

    out = tmp_path_factory.mktemp("tiny_checkpoint")
    args = ["train", "--root", str(ucf_synth), "--dataset", "UCF", "--out", str(out), "--epochs", "1", "--quiet"]
    assert main([*args, "--samples-per-class", "1"]) == 0
    return out


@pytest.fixture(scope="session")
def media_files(tmp_path_factory):
    """Every media test case made once with ffmpeg (tests/media_factory.py), by case name."""
    from media_factory import make_all

    return make_all(tmp_path_factory)


# The fewest videos `kda extract` makes a root of that both stages train on: class A seen (two training videos),
# B unseen in stage 1 and seen in stage 2, C unseen in stage 2.
TINY_SPLITS = {
    "A_0.mp4": ("A", "stage_1_train"),
    "A_1.mp4": ("A", "stage_1_train"),
    "A_2.mp4": ("A", "stage_1_val_seen"),
    "B_0.mp4": ("B", "stage_1_val_unseen"),
    "B_1.mp4": ("B", "stage_2_test_seen"),
    "C_0.mp4": ("C", "stage_2_test_unseen"),
}
TINY_EXTRACT = ["--setting", "cls", "--weights", "offline", "--max-clips", "1", "--max-examples", "1", "--quiet"]


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory):
    """Six one-second clips of three classes (made by ffmpeg) and their labels CSV with a split column."""
    import csv

    from media_factory import write_clip

    folder = tmp_path_factory.mktemp("tiny_videos")
    colors = {"A": "red", "B": "green", "C": "blue"}
    for i, (name, (label, _)) in enumerate(TINY_SPLITS.items()):
        write_clip(folder / name, colors[label], seconds=1.0, tone=300 + 60 * i)
    with (folder / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "split"])
        writer.writerows([name, label, split] for name, (label, split) in TINY_SPLITS.items())
    return folder


def run_cli(*args) -> tuple[int, str, str]:
    """`python -m kda ARGS` in this process (backbones stay loaded): exit code, stdout, stderr."""
    import contextlib
    import io

    from kda.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in args])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="session")
def tiny_root(tiny_videos, tmp_path_factory):
    """`tiny_videos` through `kda extract` (cls setting, offline weights, one C3D clip and one audio example per
    video) into a dataset root named 'tiny'. Tests that change it work on a copy."""
    out = tmp_path_factory.mktemp("tiny_root")
    code, stdout, stderr = run_cli(
        "extract", "--videos", tiny_videos, "--labels", tiny_videos / "labels.csv", "--out", out,
        "--dataset", "tiny", *TINY_EXTRACT,
    )  # fmt: skip
    assert code == 0, stderr
    assert "6 extracted, 0 already there" in stdout, stdout
    return out


# Slow tests, in the order `make mutants` should reach them: last, so that a mutant a fast test kills costs little.
SLOW_FOR_MUTANTS = (
    "tests/kda/test_train.py::test_paper_protocol",
    "tests/kda/test_train.py::test_released_protocol",
)


def pytest_collection_modifyitems(items):
    """Under mutmut (which runs the tests that cover each mutant with -x), run the slow protocol tests last."""
    if os.environ.get("MUTANT_UNDER_TEST"):
        items.sort(key=lambda item: item.nodeid.startswith(SLOW_FOR_MUTANTS))


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """A small checkpoint (tests/checkpoint_factory.py) saved once: copy it before changing it."""
    from checkpoint_factory import make_checkpoint

    from kda.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt") / "ck"
    save_checkpoint(make_checkpoint(), folder)
    return folder


@pytest.fixture(scope="session")
def minilm():
    """The real text encoder all-MiniLM-L6-v2, loaded once (tests read its counters as differences)."""
    from kda.knowledge import MINILM_TEXT_ENCODER, load_text_encoder

    return load_text_encoder(MINILM_TEXT_ENCODER)


@pytest.fixture(scope="session")
def studio(minilm):
    """The bundled demo checkpoint, loaded once with `minilm` as its text encoder (a studio is shared by its
    visitors: give each test its own session, and never change the studio itself)."""
    from kda.studio import Studio

    demo = Path(__file__).resolve().parents[1] / "checkpoints" / "demo-ucf-cls"
    if not demo.is_dir():
        pytest.skip("no demo checkpoint: run `make checkpoint`")
    return Studio.load(demo, max_clips=1, max_examples=4, text_encoder=minilm)


@pytest.fixture(scope="session")
def offline_clip():
    """CLIP ViT-B/32 on seeded random weights, both towers (built once: it is the slowest model to build)."""
    from kda.zero_shot import ZeroShotScorer

    return ZeroShotScorer.load("offline")
