"""A loopback stand-in for the Hugging Face Hub's HTTP API, enough for `huggingface_hub.snapshot_download`: the
revision info of a repository (its commit and file list) and each file's download. It serves real folders over
real HTTP, so the real client code runs; a repository it does not know is a 404 with the Hub's error code.
Point a process at it with HF_ENDPOINT (read when huggingface_hub is imported, so in a fresh process)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_env(endpoint: str, home) -> dict[str, str]:
    """This process's environment for a child that must use the loopback Hub at `endpoint`, caching under
    `home`: no HF_ setting of the caller's leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return env | {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"}


def blob_id(data: bytes) -> str:
    """Git's id of a file's content, which the Hub uses as the oid and ETag of files kept outside LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class LoopbackHub:
    def __init__(self, repos: dict[str, Path] | None = None):
        self.repos = {name: Path(folder) for name, folder in (repos or {}).items()}
        self.downloads: list[tuple[str, str]] = []  # (repo, file) of every file body sent

    def __enter__(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def reply(self, status: int, body: bytes, headers: dict[str, str]):
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def not_found(self):
                self.reply(404, b'{"error": "Repository Not Found"}', {"X-Error-Code": "RepoNotFound"})

            def answer(self):
                path = self.path.split("?")[0]
                info = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree)/[^/]+", path)
                if info and info[1] in hub.repos:
                    files = sorted(p for p in hub.repos[info[1]].iterdir() if p.is_file())
                    if info[2] == "revision":  # the commit and file names
                        siblings = [{"rfilename": p.name} for p in files]
                        body = {"id": info[1], "sha": COMMIT, "siblings": siblings}
                    else:  # the file listing, one page
                        body = [
                            {"type": "file", "path": p.name, "size": p.stat().st_size, "oid": blob_id(p.read_bytes())}
                            for p in files
                        ]
                    return self.reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
                file = re.fullmatch(r"/([^/]+/[^/]+)/resolve/[^/]+/([^/]+)", path)
                if file and file[1] in hub.repos and (hub.repos[file[1]] / file[2]).is_file():
                    body = (hub.repos[file[1]] / file[2]).read_bytes()
                    if self.command == "GET":
                        hub.downloads.append((file[1], file[2]))
                    return self.reply(200, body, {"ETag": f'"{blob_id(body)}"', "X-Repo-Commit": COMMIT})
                self.not_found()

            do_GET = do_HEAD = answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
