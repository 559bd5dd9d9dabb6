"""The real app for tests: `python app.py` in a subprocess on a free 127.0.0.1 port with the bundled demo
checkpoint, waited for (bounded), and driven with `gradio_client`; and a fresh venv to start it from files alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "demo-ucf-cls"
NO_LLM = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}  # as on a fresh Space: regeneration off, and says why
READY_TIMEOUT = 180.0  # seconds from start to the first page; the README's budget is 15 s, CI machines are slower


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    process: subprocess.Popen
    port: int
    log: Path
    started: float  # time.monotonic() at launch
    ready_s: float = 0.0  # seconds until the page answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def client(self, downloads: Path | None = None):
        from gradio_client import Client

        kwargs = {"download_files": str(downloads)} if downloads else {}
        return Client(self.url, verbose=False, **kwargs)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # gradio closes its server cleanly on Ctrl-C
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_app(
    log: Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = READY_TIMEOUT,
    python: str = sys.executable,
    folder: Path = ROOT,
    port: int | None = None,
):
    """Start `folder`/app.py (this checkout's by default) with `python` in `folder` on `port` (a free one by
    default), and return once its page answers; on failure raise with the log's tail."""
    port = port or free_port()
    environment = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",  # no network here; nothing to report to
        "GRADIO_TEMP_DIR": str(log.parent / "gradio"),  # uploads of this server only
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    command = [python, str(folder / "app.py"), "--host", "127.0.0.1", "--port", str(port), *args]
    out = log.open("wb")
    process = subprocess.Popen(command, cwd=folder, env=environment, stdout=out, stderr=subprocess.STDOUT)
    server = AppServer(process, port, log, time.monotonic())
    try:
        wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def wait_ready(server: AppServer, timeout: float) -> None:
    deadline = server.started + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"app.py exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as r:
                if r.status == 200:
                    server.ready_s = time.monotonic() - server.started
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def fresh_venv(folder: Path) -> Path:
    """A new venv whose only addition is this interpreter's site-packages directory, named in a .pth file: the
    third-party packages import, but the project does not (its editable install is a .pth file of that
    directory, and .pth files of a directory named in a .pth are not read). Returns its python."""
    venv.create(folder, with_pip=False, symlinks=True)
    python = folder / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    Path(site, "third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python
