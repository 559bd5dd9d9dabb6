"""The test fixture's own promise: a local LLM server that died is named, with its signal and log, in the report of
the test that failed because of it (a native llama.cpp build once died at the first completion, and the tests
only said "cannot reach the LLM")."""

import textwrap
from pathlib import Path

INNER_TEST = """
import subprocess, sys
from pathlib import Path

import pytest
from llm_server import LocalLLM

CRASH = "import os, signal; print('ggml: illegal instruction near the first completion', flush=True); os.kill(os.getpid(), signal.SIGSEGV)"


@pytest.fixture
def llm(tmp_path):
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", CRASH], stdout=out, stderr=subprocess.STDOUT)
    process.wait()
    return LocalLLM(process, port=1, log=log)


def test_that_needs_the_llm(llm):
    raise ConnectionError("cannot reach the LLM at http://127.0.0.1:1/v1 (after 4 attempts)")


def test_that_passes(llm):
    pass
"""


def test_a_failed_test_names_the_dead_server_its_signal_and_its_log(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # the inner pytest imports tests/llm_server.py
    pytester.makeconftest("from llm_server import pytest_runtest_makereport")
    pytester.makepyfile(test_inner=textwrap.dedent(INNER_TEST))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--rootdir={pytester.path}")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert "the local LLM server (pid" in output and "was killed by SIGSEGV" in output
    assert "ggml: illegal instruction near the first completion" in output  # the log's tail
    assert "cannot reach the LLM" in output  # the original failure is kept below it
