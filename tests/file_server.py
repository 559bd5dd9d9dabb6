"""A loopback file server for download tests, standing in for the real hosts (Google Drive, GitHub's raw files),
and the files it serves that the tests write themselves."""

from __future__ import annotations

import csv
import http.server
import io
import threading

from kda.benchmark import builtin_classes
from kda.knowledge.store import ASPECTS


class FileServer:
    """Serves files on 127.0.0.1 with HTTP Range support; `cut` responses are broken off half way."""

    def __init__(self, files: dict[str, bytes], content_type: str = "application/octet-stream"):
        self.files, self.cut, self.ranges, self.content_type = files, 0, [], content_type
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                server.ranges.append(header)
                start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
                self.send_response(206 if header else 200)
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Length", str(len(data) - start))
                if header:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                body = data[start:]
                if server.cut:
                    server.cut -= 1
                    body = body[: len(body) // 2]  # the connection drops mid-transfer
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


FILLER = ["a", "person", "moves", "with", "care", "in", "the", "scene", "while", "the", "sound"]


def released_csv(dataset: str, drop: int | None = None, words: int = 0) -> bytes:
    """A CSV in the released format for every class of `dataset`: names as readable phrases in another case than
    the benchmark's (the matching rule ignores case), descriptions quoted with commas inside, each lengthened to
    `words` words with common ones where asked (the released descriptions have about 42)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "description_1", "description_2", "description_3"])
    for i, c in enumerate(builtin_classes(dataset)):
        if i != drop:
            texts = [f"{c.name}: the {aspect}, in words, of class {i}" for aspect in ASPECTS]
            texts = [t + "".join(f" {FILLER[j % len(FILLER)]}" for j in range(words - len(t.split()))) for t in texts]
            writer.writerow([c.name.lower(), *texts])
    return out.getvalue().encode()
