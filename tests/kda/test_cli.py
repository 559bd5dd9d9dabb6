"""The command line in this process: every user error is one line on stderr and exit 1, a real bug still
raises."""

import json
import shutil
from pathlib import Path

import pytest
from checkpoint_factory import make_checkpoint
from conftest import run_cli

from kda.checkpoint import load_checkpoint, save_checkpoint
from kda.errors import KdaError

DEMO = Path(__file__).resolve().parents[2] / "checkpoints" / "demo-ucf-cls"


def test_each_user_error_is_one_line_on_stderr_and_exit_1(saved, ucf_synth, tmp_path):
    (tmp_path / "not-a-video.mp4").write_text("plain text")
    (tmp_path / "labels.csv").write_text("filename,label\n")
    bad_ckpt = tmp_path / "bad_ckpt"
    shutil.copytree(saved, bad_ckpt)
    (bad_ckpt / "config.json").write_text("{")
    cls_ckpt = make_checkpoint("cls")  # a setting with an extractor, so classify gets as far as the file
    cls_ckpt.feature_weights = "offline"
    save_checkpoint(cls_ckpt, tmp_path / "cls_ckpt")
    # Each case with the one line that names its own fault (so no case passes by failing for another reason).
    cases = [
        (
            ("info", "--checkpoint", bad_ckpt),
            f"{bad_ckpt / 'config.json'} is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        (
            ("evaluate", "--checkpoint", saved, "--root", tmp_path),  # make_checkpoint records no dataset
            "the checkpoint does not record its dataset; pass --dataset",
        ),
        (
            ("evaluate", "--checkpoint", saved, "--root", tmp_path, "--dataset", "UCF"),
            f"{tmp_path} is not an AVCA dataset root: no class-split/ folder",
        ),
        (
            ("classify", "--checkpoint", tmp_path / "cls_ckpt", tmp_path / "not-a-video.mp4"),
            f"{tmp_path / 'not-a-video.mp4'}: is not a video or audio file that FFmpeg recognises; check the file type",
        ),
        (
            ("classify", "--checkpoint", saved, tmp_path / "not-a-video.mp4"),
            "feature setting 'main' has no extractor: the AVCA 'main' features come from SeLaVi, whose extractor "
            "kda does not ship; train on the public 'main' features for benchmarks, and use a 'cls' or 'clip' "
            "checkpoint to classify your own videos",
        ),
        (
            ("extract", "--videos", tmp_path, "--labels", tmp_path / "labels.csv", "--out", tmp_path / "out"),
            f"{tmp_path / 'labels.csv'} lists no videos",
        ),
        (
            ("train", "--root", ucf_synth, "--dataset", "UCF", "--out", tmp_path / "ck",
             "--knowledge", tmp_path / "no.npz"),
            f"knowledge file {tmp_path / 'no.npz'} does not exist",
        ),
        (
            ("train", "--root", ucf_synth, "--dataset", "UCF", "--setting", "main", "--out", tmp_path / "m"),
            f"missing class list {ucf_synth / 'class-split' / 'main_split' / 'stage_1_train.txt'}",
        ),
        (
            ("evaluate", "--checkpoint", tmp_path / "none", "--root", ucf_synth),
            f"checkpoint {tmp_path / 'none'} is not a folder (expected config.json + model.safetensors)",
        ),
        (
            ("describe", "--classes", tmp_path / "no-such-list.txt", "--out", tmp_path / "k.json"),
            f"--classes '{tmp_path / 'no-such-list.txt'}' is neither a dataset (UCF, ActivityNet, VGGSound) nor a "
            "file of class names",
        ),
    ]  # fmt: skip
    for args, message in cases:
        code, stdout, stderr = run_cli(*args)
        assert (code, stdout) == (1, ""), (args, stderr)
        assert stderr.splitlines() == [f"kda {args[0]}: error: {message}"], (args, stderr)


def test_a_real_bug_still_raises(monkeypatch):
    """Only user errors become one line; a programming error keeps its traceback (main re-raises it)."""

    def buggy(args):
        return 1 // 0

    monkeypatch.setattr("kda.cli.info.run", buggy)
    with pytest.raises(ZeroDivisionError):
        run_cli("info", "--setting", "cls")

    def user_error(args):
        raise KdaError("a bad value")

    monkeypatch.setattr("kda.cli.info.run", user_error)
    assert run_cli("info", "--setting", "cls") == (1, "", "kda info: error: a bad value\n")


@pytest.mark.media
def test_kda_classify_prints_the_ranking_writes_the_json_and_refuses_a_non_video(media_files, tmp_path):
    def run(*args):
        return run_cli("classify", *args, "--checkpoint", DEMO)

    code, stdout, stderr = run(str(media_files["mp4_h264_aac"]), "--json", str(tmp_path / "p.json"))
    assert code == 0, stderr
    lines = stdout.splitlines()
    video = media_files["mp4_h264_aac"].name
    assert lines[0] == f"GZSL (beta {load_checkpoint(DEMO).beta:.2f}): {video}"  # the checkpoint's own beta
    top = json.loads((tmp_path / "p.json").read_text())["gzsl"]  # the one JSON shape: gzsl and zsl
    assert len(top) == 5 and [s["score"] for s in top] == sorted((s["score"] for s in top), reverse=True)
    # The printed ranking is the JSON's, with each class marked seen or UNSEEN as the checkpoint has it.
    seen = {c.id: c.seen for c in load_checkpoint(DEMO).classes}
    assert lines[1:6] == [
        f"{rank:>2}. {s['name']:<32} {'seen' if seen[s['class_id']] else 'UNSEEN':<7} "
        f"score {s['score']:.3f}  distance {s['distance']:.3f}"
        for rank, s in enumerate(top, start=1)
    ]
    assert any("offline random weights" in line for line in lines)
    code, stdout, _ = run(str(media_files["no_audio"]), "--zsl")
    assert code == 0 and "visual-only" in stdout and stdout.startswith("ZSL")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    code, _, stderr = run(str(text))
    assert code == 1
    assert stderr.strip().splitlines() == [
        f"kda classify: error: {text}: is not a video or audio file that FFmpeg recognises; check the file type"
    ]
