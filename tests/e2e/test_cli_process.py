"""The `kda` command in its own process: what only a real process shows (the exit code and stderr of a
fresh interpreter, Ctrl-C, a checkpoint fetched from a Hub) and the whole train -> evaluate -> info path."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hub_server import LoopbackHub, hub_env
from llm_server import environment_without_llm_settings, free_port

from kda.metrics import gzsl_metrics


def test_hub_checkpoint_that_cannot_be_fetched_is_one_line(tmp_path):
    with LoopbackHub() as endpoint:  # it knows no repository
        env = hub_env(endpoint, tmp_path)
        done = subprocess.run(
            [sys.executable, "-m", "kda", "info", "--checkpoint", "hf-hub:someone/no-such-checkpoint"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "kda info: error: cannot fetch checkpoint someone/no-such-checkpoint from the Hugging Face Hub ("
    ), done.stderr
    assert "check the id and your network" in lines[0] and done.stdout == ""


def test_ctrl_c_exits_130_with_one_line(ucf_synth, tmp_path):
    out = tmp_path / "ck"
    command = [sys.executable, "-m", "kda", "train", "--root", str(ucf_synth), "--dataset", "UCF", "--setting", "cls",
               "--out", str(out), "--epochs", "1000", "--batch-size", "64", "--quiet"]  # fmt: skip
    # A shell's background job ignores SIGINT and its children inherit that; Ctrl-C must reach `kda` here.
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
    )
    try:
        deadline = time.monotonic() + 300
        while not ((out / "train_log.jsonl").exists() and (out / "train_log.jsonl").read_text()):  # an epoch is done
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert stderr == "kda: interrupted\n" and stdout == ""
    assert not (out / "config.json").exists()  # no checkpoint from a run cut short


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


def test_cli_error_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    command = [
        sys.executable,
        "-m",
        "kda",
        "describe",
        "--classes",
        "UCF",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "k.json"),
    ]
    done = subprocess.run(
        [*command, "--base-url", url, "--retries", "0"],
        capture_output=True,
        text=True,
        env=environment_without_llm_settings(),
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"kda describe: error: cannot reach the LLM at {url} (after 1 attempts); start the server (docs/LOCAL_LLM.md) or fix --base-url"
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=environment_without_llm_settings())
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "kda describe: error: no API key for the LLM: set OPENAI_API_KEY or give --api-key, or use a local server "
        "with --base-url http://127.0.0.1:PORT/v1 (see docs/LOCAL_LLM.md)"
    ]
