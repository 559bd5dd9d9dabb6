"""`kda evaluate --knowledge FILE` in process, on the bundled demo checkpoint (which carries its test split): the
checkpoint's own knowledge gives its recorded test metrics exactly, an edited file what the app's session gives,
the same through the benchmark's features (`--root`, a forward pass), and bad files one line each."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from kda.studio import Studio

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "checkpoints" / "demo-ucf-cls"
METRICS = ("seen", "unseen", "hm", "zsl", "beta")
MISLEADING = [
    "A spreadsheet of quarterly tax figures for a small accounting firm.",
    "Rows of numbers in grey cells on a computer screen.",
    "The quiet hum of an office air conditioner.",
]
pytestmark = pytest.mark.skipif(not DEMO.is_dir(), reason="no demo checkpoint: run `make checkpoint`")


@pytest.fixture(scope="module")
def studio():
    return Studio.load(DEMO)


def evaluate(tmp_path, *args) -> tuple[dict, str]:
    out = tmp_path / "metrics.json"
    code, stdout, stderr = run_cli("evaluate", "--checkpoint", DEMO, *args, "--json", out)
    assert code == 0, stderr
    return json.loads(out.read_text()), stdout


def write(tmp_path, session, name="knowledge.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(session.export_json()))
    return path


def edited_session(studio):
    session = studio.new_session()
    target = next(c.id for c in studio.checkpoint.classes if not c.seen)
    session.edit(target, MISLEADING, name="Quarterly Tax Report")
    session.add_class("Playing Bagpipes", ["A piper squeezes a bag to sound droning pipes."])
    return session


def test_own_knowledge_gives_the_recorded_test_metrics_exactly(studio, tmp_path):
    recorded = studio.checkpoint.metrics["test"]
    plain, _ = evaluate(tmp_path)  # no --root: the split the checkpoint carries
    own, stdout = evaluate(tmp_path, "--knowledge", write(tmp_path, studio.new_session()))
    for result in (plain, own):
        assert {k: result[k] for k in METRICS} == {k: recorded[k] for k in METRICS}
    assert "per class" not in stdout  # nothing changed, so no class is listed


def test_an_edited_file_gives_what_the_apps_session_gives(studio, tmp_path):
    session = edited_session(studio)
    comparison = studio.compare_knowledge(session)
    result, stdout = evaluate(tmp_path, "--knowledge", write(tmp_path, session), "--scores-out", tmp_path / "s.npz")
    expected = comparison.edited.to_dict()
    assert all(abs(result[k] - expected[k]) <= 1e-9 for k in METRICS)
    assert comparison.edited.hm < comparison.checkpoint.hm
    assert "Quarterly Tax Report (unseen, edited)" in stdout and "Playing Bagpipes (unseen, edited)" in stdout
    scores = np.load(tmp_path / "s.npz")  # the distances behind the numbers, the added class among the candidates
    assert list(scores["class_names"]) == session.class_ids and scores["seen"].tolist() == session.seen.tolist()
    assert scores["distances"].shape == (len(studio.ab), 49)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """The demo checkpoint's synthetic benchmark root, made again as `make checkpoint` makes it (deterministic)."""
    out = tmp_path_factory.mktemp("demo_root") / "data"
    command = [
        sys.executable, "-m", "kda", "synth", "--dataset", "UCF", "--setting", "cls", "--knowledge",
        str(ROOT / "assets" / "knowledge" / "ucf.json"), "--text-encoder", studio_encoder(), "--latent-dim", "16",
        "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return out


def studio_encoder() -> str:
    return json.loads((DEMO / "config.json").read_text())["text_encoder"]


@pytest.mark.slow  # makes the demo's full-size synthetic root again (a subprocess, about 14 s)
def test_through_the_benchmarks_features_the_same_numbers(studio, demo_root, tmp_path):
    """--root embeds the test videos again (a forward pass); the stored split was made from the same videos."""
    session = edited_session(studio)
    path = write(tmp_path, session)
    stored, _ = evaluate(tmp_path, "--knowledge", path)
    through_root, _ = evaluate(tmp_path, "--knowledge", path, "--root", demo_root)
    assert all(abs(stored[k] - through_root[k]) <= 1e-9 for k in METRICS)
    own, _ = evaluate(tmp_path, "--root", demo_root)
    assert {k: own[k] for k in METRICS} == {k: studio.checkpoint.metrics["test"][k] for k in METRICS}


def test_bad_knowledge_files_get_one_line(studio, tmp_path):
    data = studio.new_session().export_json()
    del data["classes"]["ApplyLipstick"]
    (tmp_path / "short.json").write_text(json.dumps(data))
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00 not text")
    shutil.copyfile(DEMO / "config.json", tmp_path / "config.json")  # JSON, but not a knowledge file
    for name, message in [
        ("short.json", "lacks 1 of the 48 classes: ApplyLipstick"),
        ("binary.json", "is not a JSON knowledge file"),
        ("missing.json", "missing.json"),
        ("config.json", "knowledge"),
    ]:
        code, stdout, stderr = run_cli("evaluate", "--checkpoint", DEMO, "--knowledge", tmp_path / name)
        assert code == 1 and message in stderr and len(stderr.strip().splitlines()) == 1, (name, stderr)
