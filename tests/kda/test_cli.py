"""The command line end to end on a synthetic benchmark, through real subprocesses."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kda.metrics import gzsl_metrics


def kda(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "kda", *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"kda {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    root, ck = tmp / "ucf", tmp / "ck"
    kda("synth", "--dataset", "UCF", "--setting", "cls", "--out", root, "--train-videos", 10, "--eval-videos", 4)
    out = kda(
        "train", "--root", root, "--dataset", "UCF", "--setting", "cls",
        "--knowledge", root / "knowledge_vectors.npz", "--out", ck, "--epochs", 12, "--quiet",
    )  # fmt: skip
    return root, ck, out.stdout


def test_train_prints_table_and_beats_chance(trained):
    root, ck, stdout = trained
    config = json.loads((ck / "config.json").read_text())
    test = config["metrics"]["test"]
    row = next(line for line in stdout.splitlines() if line.startswith("test "))  # the table of the stored metrics
    assert row.split()[1:5] == [f"{test[k]:.2f}" for k in ("seen", "unseen", "hm", "zsl")]
    chance = 100 / 48  # 42 seen + 6 unseen candidate classes
    assert test["unseen"] > 5 * chance and test["hm"] > 5 * chance
    assert (ck / "train_log.jsonl").read_text().count("\n") == 12 + config["metrics"]["best_epoch"]


def test_evaluate_writes_json_and_scores_that_recompute(trained, tmp_path):
    root, ck, _ = trained
    out = kda(
        "evaluate",
        "--checkpoint",
        ck,
        "--root",
        root,
        "--json",
        tmp_path / "m.json",
        "--scores-out",
        tmp_path / "s.npz",
    )
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"seen", "unseen", "hm", "zsl", "beta", "grid"}  # grid: "" at a given beta
    row = out.stdout.splitlines()[-1].split()  # the table's test row shows the metrics the JSON holds
    assert row == ["test", *(f"{metrics[k]:.2f}" for k in ("seen", "unseen", "hm", "zsl", "beta"))]
    stored = json.loads((ck / "config.json").read_text())["metrics"]["test"]
    assert metrics["hm"] == pytest.approx(stored["hm"], abs=1e-6)
    with np.load(tmp_path / "s.npz") as s:
        names = s["class_names"]
        assert len(names) == 48 and s["seen"].sum() == 42 and s["distances"].shape == (len(s["labels"]), 48)
        again = gzsl_metrics(s["distances"], s["labels"], s["seen"], float(s["beta"]))
    assert again.hm == pytest.approx(metrics["hm"], abs=1e-4)


def test_info_prints_parameter_count(trained):
    assert "7,317,056" in kda("info", "--setting", "cls").stdout
    assert "3,843,648" in kda("info", "--setting", "main").stdout
    assert "48 (42 seen, 6 unseen)" in kda("info", "--checkpoint", trained[1]).stdout


def test_bad_input_exits_1_with_one_line(tmp_path, trained):
    root, ck, _ = trained
    # Each case with the one line that names its own fault (so no case passes by failing for another reason).
    cases = [
        (
            ("train", "--root", tmp_path, "--dataset", "UCF", "--out", tmp_path / "x",
             "--knowledge", root / "knowledge_vectors.npz"),
            f"{tmp_path} is not an AVCA dataset root: no class-split/ folder",
        ),
        (
            ("evaluate", "--checkpoint", tmp_path / "none", "--root", root),
            f"checkpoint {tmp_path / 'none'} is not a folder (expected config.json + model.safetensors)",
        ),
        (
            ("train", "--root", root, "--dataset", "UCF", "--setting", "main", "--out", tmp_path / "y"),
            f"missing class list {root / 'class-split' / 'main_split' / 'stage_1_train.txt'}",
        ),
        (
            ("train", "--root", root, "--dataset", "UCF", "--out", tmp_path / "z",
             "--knowledge", tmp_path / "missing.npz"),
            f"knowledge file {tmp_path / 'missing.npz'} does not exist",
        ),
    ]  # fmt: skip
    for args, message in cases:
        proc = kda(*args, check=False)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.strip().splitlines() == [f"kda {args[0]}: error: {message}"]
