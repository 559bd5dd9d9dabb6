"""Error paths that had no test: damaged checkpoints (including a Hub id that cannot be fetched, through a real
loopback server), broken benchmark roots, LLM endpoints that fail in every way the `openai` client reports, the
command line's exit codes (one line per user error, 130 on Ctrl-C, a real bug still raising), and training
runs that cannot work. Every error must be the specific one, with a message that names the bad value."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import openai
import pytest
import torch
from conftest import run_cli
from hub_server import LoopbackHub, hub_env
from safetensors.torch import load_file, save_file
from test_checkpoint import make_checkpoint

from kda.benchmark import BenchmarkError, load_benchmark, write_class_split, write_feature_file
from kda.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from kda.errors import KdaError
from kda.knowledge import LLMError, LLMRefusalError, describe_classes
from kda.knowledge.class_matrix import ClassMatrix
from kda.knowledge.generate import ANSWER_SCHEMA, backoff_delay
from kda.losses import loss_preset
from kda.model import DimensionMismatchError, ModelConfig
from kda.train import TrainConfig, train

try:
    from llm_server import Reply, ScriptedLLM, answer, chat_completion
except ImportError:  # tests/ imported as a package
    from tests.llm_server import Reply, ScriptedLLM, answer, chat_completion

FAST = {"retries": 2, "backoff": 0.01, "timeout": 5.0}


# -- checkpoints --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "ck"
    save_checkpoint(make_checkpoint(), folder)
    return folder


def damaged(saved, tmp_path, edit_config=None, edit_tensors=None):
    folder = tmp_path / "damaged"
    shutil.copytree(saved, folder)
    if edit_config is not None:
        config = json.loads((folder / "config.json").read_text())
        edit_config(config)
        (folder / "config.json").write_text(json.dumps(config))
    if edit_tensors is not None:
        tensors = load_file(str(folder / "model.safetensors"))
        edit_tensors(tensors)
        save_file(tensors, str(folder / "model.safetensors"))
    return folder


def test_config_that_is_not_json_or_not_an_object(saved, tmp_path):
    folder = damaged(saved, tmp_path)
    (folder / "config.json").write_text('{"format": "kda-checkpoint/1", ')
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON"):
        load_checkpoint(folder)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"format 'list' is not 'kda-checkpoint/1'"):
        load_checkpoint(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("model"), r"bad 'model' section: 'model'"),
        (lambda c: c["model"].update(bogus=1), r"bad 'model' section: unknown model config keys \['bogus'\]"),
        (lambda c: c.__setitem__("model", [1, 2]), r"bad 'model' section: unknown model config keys \[1, 2\]; known: "),
        (lambda c: c.pop("features"), r"bad 'features', 'classes' or 'beta' \(KeyError: 'features'\)"),
        (lambda c: c["features"].update(setting="selavi"), r"unknown feature setting 'selavi'; choose one of"),
        (lambda c: c["classes"][0].pop("seen"), r"bad 'features', 'classes' or 'beta' \(KeyError: 'seen'\)"),
        (lambda c: c.__setitem__("beta", "high"), r"could not convert string to float: 'high'"),
    ],
)
def test_bad_config_sections_are_named(saved, tmp_path, edit, message):
    folder = damaged(saved, tmp_path, edit_config=edit)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(folder))}/config.json: .*{message}"):
        load_checkpoint(folder)


def test_missing_knowledge_tensor(saved, tmp_path):
    folder = damaged(saved, tmp_path, edit_tensors=lambda t: t.pop("knowledge.embeddings"))
    with pytest.raises(CheckpointError, match=r"model.safetensors has no 'knowledge.embeddings' tensor"):
        load_checkpoint(folder)


def test_unexpected_and_misshaped_tensors_are_named(saved, tmp_path):
    def edit(tensors):
        tensors["extra.weight"] = torch.zeros(2)
        tensors["position"] = torch.zeros(3, 512)

    folder = damaged(saved, tmp_path, edit_tensors=edit)
    with pytest.raises(
        CheckpointError,
        match=rf"^{re.escape(str(folder))}/model.safetensors does not match its config.json: unexpected tensors "
        r"\['extra.weight'\]; shape mismatch position: file \(3, 512\) vs config \(2, 512\)$",
    ):
        load_checkpoint(folder)


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


# -- benchmark roots ------------------------------------------------------------------------------------------


@pytest.fixture
def root(ucf_synth, tmp_path):
    copy = tmp_path / "ucf"
    shutil.copytree(ucf_synth, copy)
    return copy


def first_file(root, modality="audio", folder="stage_1_train"):
    return sorted((root / "features/cls_features" / modality / folder).glob("*.h5"))[0]


def read_stage_1(root):
    return load_benchmark(root, "UCF", "cls").stage(1)


def test_feature_file_of_a_class_in_no_split(root):
    shutil.copy(first_file(root), root / "features/cls_features/audio/stage_1_train/Quidditch.h5")
    with pytest.raises(BenchmarkError, match=r"Quidditch.h5 names a class that is in no class split"):
        read_stage_1(root)


def test_audio_without_video(root):
    audio = first_file(root)
    (root / "features/cls_features/video/stage_1_train" / audio.name).unlink()
    with pytest.raises(BenchmarkError, match=rf"audio features .*{audio.name} have no video features at"):
        read_stage_1(root)


def test_video_file_missing_urls_of_the_audio_file(root):
    video = first_file(root, "video")
    with h5py.File(video, "r") as f:
        data, urls = np.asarray(f["data"]), list(f["video_urls"])
    with h5py.File(video, "w") as f:
        f["data"] = data[1:]
        f["video_urls"] = urls[1:]
    missing = urls[0].decode()
    with pytest.raises(BenchmarkError, match=rf"{video.name} lacks 1 videos present in audio, e.g. {missing}"):
        read_stage_1(root)


@pytest.mark.parametrize(("data", "urls"), [(np.zeros(3), ["a", "b", "c"]), (np.zeros((3, 128)), ["a", "b"])])
def test_feature_file_of_the_wrong_shape(root, data, urls):
    path = first_file(root)
    with h5py.File(path, "w") as f:
        f["data"] = data
        f["video_urls"] = [u.encode() for u in urls]
    with pytest.raises(BenchmarkError, match=r"'data' must be \(N, D\) with one URL per row, got \(3.*\), [23] URLs"):
        read_stage_1(root)


def test_empty_feature_folder(root):
    for path in (root / "features/cls_features/audio/stage_1_train").glob("*.h5"):
        path.unlink()
    with pytest.raises(BenchmarkError, match=r"no feature files in .*audio/stage_1_train"):
        read_stage_1(root)
    with pytest.raises(BenchmarkError, match=r"no feature files in .*audio/stage_1_train"):
        load_benchmark(root, "UCF", "cls").dims  # noqa: B018 (a property that reads the files)


# -- LLM endpoints --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_llm_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def describe(script, tmp_path, **settings):
    with ScriptedLLM(script) as llm:
        try:
            describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **{**FAST, **settings})
        finally:
            requests = list(llm.requests)
    return requests


def test_model_the_endpoint_does_not_serve(tmp_path):
    missing = Reply(status=404, body={"error": {"message": "The model `gpt-9` does not exist", "code": "not_found"}})
    with ScriptedLLM(lambda b, n: missing) as llm:
        with pytest.raises(LLMError, match=r"does not serve model 'gpt-9' \(HTTP 404: .*gpt-9.*\); check `model`"):
            describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, model="gpt-9", **FAST)
        assert len(llm.requests) == 1  # not retried: asking again cannot help
    assert not (tmp_path / "k.json").exists()


def test_persistent_server_errors_are_retried_then_reported(tmp_path):
    broken = Reply(status=500, body={"error": {"message": "backend exploded"}})
    with ScriptedLLM(lambda b, n: broken) as llm:
        with pytest.raises(LLMError, match=r"failed after 3 attempts: HTTP 500: .*backend exploded"):
            describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **FAST)
        assert len(llm.requests) == 3


def test_server_error_then_answer_succeeds(tmp_path):
    broken = Reply(status=503, body={"error": {"message": "warming up"}})
    script = lambda b, n: broken if n == 0 else answer("Archery is shooting arrows at a target.")  # noqa: E731
    with ScriptedLLM(script) as llm:
        result = describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **FAST)
    assert result.described == ["Archery"]
    # three questions (introduction, visual, auditory), the first asked twice: the 503, then its retry
    assert len(llm.requests) == 4 and llm.requests[1]["messages"] == llm.requests[0]["messages"]
    assert [r["seed"] for r in llm.requests] == [0, 1, 0, 0]  # only the retry samples anew


def refusal_reply():
    body = chat_completion(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that request."
    return Reply(body=body)


@pytest.mark.parametrize(
    "reply",
    [refusal_reply(), Reply(body=chat_completion(None, finish_reason="content_filter"))],
    ids=["refusal", "content_filter"],
)
def test_refusal_and_content_filter(tmp_path, reply):
    with ScriptedLLM(lambda b, n: reply) as llm:
        with pytest.raises(
            LLMRefusalError, match=r"model 'gpt-4o-mini' declined to describe 'Archery' \(introduction\)"
        ):
            describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **FAST)
        assert len(llm.requests) == 3  # a refusal is resampled like any unusable answer


def test_explicit_json_schema_format_is_sent_as_structured_output(tmp_path):
    requests = describe(
        lambda b, n: answer("Archery is shooting arrows at a target."), tmp_path, response_format="json_schema"
    )
    assert len(requests) == 3
    assert requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": False},
    }


def test_explicit_text_format_sends_no_response_format(tmp_path):
    reply = Reply(body=chat_completion("Archery is shooting arrows at a target."))
    requests = describe(lambda b, n: reply, tmp_path, response_format="text")
    assert len(requests) == 3 and all("response_format" not in r for r in requests)


def test_an_explicit_format_the_server_rejects_is_not_silently_replaced(tmp_path):
    rejected = Reply(status=400, body={"error": {"message": "response_format json_schema is not supported"}})
    with ScriptedLLM(lambda b, n: rejected) as llm:
        with pytest.raises(LLMError, match=r"rejected the request: HTTP 400: .*json_schema is not supported"):
            describe_classes(
                ["Archery"], tmp_path / "k.json", base_url=llm.base_url, response_format="json_schema", **FAST
            )
        assert len(llm.requests) == 1
    with pytest.raises(LLMError, match=r"unknown response format 'yaml'; choose one of auto, json_schema"):
        describe_classes(["Archery"], tmp_path / "k.json", base_url="http://127.0.0.1:1/v1", response_format="yaml")


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("120", 60.0), ("soon", None), (None, None)])
def test_retry_after_sets_the_wait_when_longer(header, expected):
    headers = {} if header is None else {"Retry-After": header}
    limited = Reply(status=429, body={"error": {"message": "slow down"}}, headers=headers)
    with ScriptedLLM(lambda b, n: limited) as llm:
        client = openai.OpenAI(api_key="sk-test", base_url=llm.base_url, max_retries=0, timeout=5)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    delay = backoff_delay(0.01, 1, caught.value)
    if expected is None:  # no usable header: exponential backoff from `backoff`, with up to 25% jitter
        assert 0.01 <= delay <= 0.0125
    else:
        assert delay == expected


# -- the command line -------------------------------------------------------------------------------------------


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


# -- training runs that cannot work -------------------------------------------------------------------------


def mini_root(root, train_videos=2, nan=False):
    """A three-class root in the 'main' layout with 4-d audio and 6-d visual features: class A seen, B unseen in
    stage 1, C unseen in stage 2; `train_videos` videos of A to train stage 1 on."""
    splits = {
        "stage_1_train": ["A"],
        "stage_1_val_seen": ["A"],
        "stage_1_val_unseen": ["B"],
        "stage_2_train": ["A", "B"],
        "stage_2_test_seen": ["A", "B"],
        "stage_2_test_unseen": ["C"],
    }
    write_class_split(root, "mini", "main", ["A", "B", "C"], {}, splits)
    rng = np.random.default_rng(0)
    videos = {("A", "stage_1_train"): train_videos, ("A", "stage_1_val_seen"): 2, ("B", "stage_1_val_unseen"): 2}
    videos |= {("A", "stage_2_test_seen"): 2, ("B", "stage_2_test_seen"): 2, ("C", "stage_2_test_unseen"): 2}
    for (label, folder), n in videos.items():
        urls = [f"{label}_{folder}_{i}" for i in range(n)]
        audio = rng.random((n, 4))
        if nan and folder == "stage_1_train":
            audio[0, 0] = np.nan
        write_feature_file(root, "main", "audio", folder, label, audio, urls)
        write_feature_file(root, "main", "video", folder, label, rng.random((n, 6)), urls)
    return load_benchmark(root, "mini", "main")


def mini_train(bench, knowledge=None, **cfg):
    knowledge = knowledge or ClassMatrix(["A", "B", "C"], np.eye(3, 8, dtype=np.float32), "precomputed")
    model = ModelConfig(audio_dim=4, visual_dim=6, audio_hidden=8, visual_hidden=8, width=8, embed_dim=8, heads=1,
                        head_dim=4, ff_hidden=4)  # fmt: skip
    return train(
        bench,
        knowledge,
        model,
        loss_preset("kda"),
        TrainConfig(**{"epochs": 1, "batch_size": 4, **cfg}),
        progress=False,
    )


def test_too_few_training_videos(tmp_path):
    bench = mini_root(tmp_path, train_videos=1)
    with pytest.raises(KdaError, match=r"^1 training videos: at least 2 are needed to form a batch$"):
        mini_train(bench)
    two = mini_train(mini_root(tmp_path / "two", train_videos=2))  # two are enough: one batch of two
    assert [(e.stage, e.epoch) for e in two.log] == [(1, 1), (2, 1)] and two.best_epoch == 1
    assert len(mini_train(mini_root(tmp_path / "one_batch"), batches_per_epoch=1).log) == 2  # one batch an epoch


def test_diverged_loss(tmp_path):
    with pytest.raises(KdaError, match=r"training diverged \(non-finite loss\); lower `lr` or check the features"):
        mini_train(mini_root(tmp_path, nan=True))


def test_knowledge_not_bound_to_the_benchmark(tmp_path):
    bench = mini_root(tmp_path)
    unbound = ClassMatrix(["C", "B", "A"], np.eye(3, 8, dtype=np.float32), "precomputed")  # another order
    with pytest.raises(
        KdaError, match=r"the class matrix is not bound to the benchmark's class list \(use ClassMatrix.bind\)"
    ):
        mini_train(bench, unbound)
    wide = ClassMatrix(["A", "B", "C"], np.eye(3, 16, dtype=np.float32), "precomputed")
    with pytest.raises(DimensionMismatchError, match=r"class-matrix rows have 16 dims but the model's embed_dim is 8"):
        mini_train(bench, wide)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"protocol": "test-set"}, r"unknown protocol 'test-set'; choose one of paper, released"),
        ({"beta_grid": "fine"}, r"unknown beta grid 'fine'; choose one of gaps, avca"),
        ({"batches_per_epoch": 0}, r"`batches_per_epoch` must be at least 1 \(or None for one pass\), not 0"),
    ],
)
def test_unknown_training_settings(tmp_path, settings, message):
    with pytest.raises(KdaError, match=message):
        mini_train(mini_root(tmp_path), **settings)
