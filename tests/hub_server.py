"""A loopback stand-in for the Hugging Face Hub's HTTP API: enough for `huggingface_hub` to download a repository
(`snapshot_download`: revision info, file tree, each file) and to write one (`create_repo`, `create_commit` and
`upload_folder`: the preupload call, the LFS batch API with its upload and verify URLs, the NDJSON commit with
inline and LFS files and deletions), and for a Space's variables. Every commit is kept, so a repository can be
read at any revision. It serves real bytes over real HTTP, so the real client code runs; an unknown repository
or revision is a 404 with the Hub's error code, a write without the token a 401.

Xet, the Hub's newer upload protocol, is not spoken here: `hub_env` turns it off (HF_HUB_DISABLE_XET), so the
client takes its LFS path. Point a process at the stand-in with `hub_env` (HF_ENDPOINT is read when
huggingface_hub is imported, so in a fresh process)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the one commit of a repository served from a folder
TOKEN = "hf_loopback_token"
KINDS = {"models": "model", "spaces": "space", "datasets": "dataset"}
URL_PREFIX = {"model": "", "space": "spaces/", "dataset": "datasets/"}  # before owner/name in file URLs
REPO = r"[\w.-]+/[\w.-]+"


def hub_env(endpoint: str, home, token: str | None = None) -> dict[str, str]:
    """This process's environment for a child that must use the loopback Hub at `endpoint`, caching under
    `home` (and writing with `token`): no HF_ setting of the caller's leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    return env | ({"HF_TOKEN": token} if token else {})


def blob_id(data: bytes) -> str:
    """Git's id of a file's content, which the Hub uses as the oid and ETag of files kept outside LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    kind: str  # "model", "space" or "dataset"
    commits: list[tuple[str, dict[str, bytes]]]  # (commit id, files by path), oldest first
    lfs: set[str] = field(default_factory=set)  # paths kept in LFS (as of the head: enough for these tests)
    variables: dict[str, dict] = field(default_factory=dict)  # a Space's variables

    def at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """The commit a branch name or commit id names, with its files."""
        if revision == "main":
            return self.commits[-1]
        return next((c for c in self.commits if c[0] == revision), None)


class HubFailure(Exception):
    def __init__(self, status: int, code: str, message: str, **body):
        super().__init__(message)
        self.status, self.code, self.body = status, code, {"error": message, **body}


class LoopbackHub:
    def __init__(self, repos: dict[str, Path] | None = None, token: str = TOKEN):
        """`repos`: model repositories served from a folder's files, as one commit (COMMIT), binary files in LFS
        as the Hub keeps them."""
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        for name, folder in (repos or {}).items():
            files = {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}
            lfs = {path for path, data in files.items() if uses_lfs(path, data[:512])}
            self.repos["model", name] = Repo("model", [(COMMIT, files)], lfs)
        self.lfs_store: dict[str, bytes] = {}  # sha256 -> content, what the LFS upload URL received
        self.downloads: list[tuple[str, str]] = []  # (repo, file) of every file body sent
        self.uploads: list[tuple[str, str, str]] = []  # (repo, path, "inline" or "lfs") of every committed file
        self.lock = threading.Lock()

    def repo(self, kind: str, name: str) -> Repo:
        if (kind, name) not in self.repos:
            raise HubFailure(404, "RepoNotFound", f"Repository Not Found: {name}")
        return self.repos[kind, name]

    def files(self, kind: str, name: str, revision: str = "main") -> dict[str, bytes]:
        """A repository's files at a revision (for tests to inspect what was committed)."""
        return self.revision(kind, name, revision)[1]

    def revision(self, kind: str, name: str, revision: str) -> tuple[str, dict[str, bytes]]:
        found = self.repo(kind, name).at(unquote(revision))
        if found is None:
            raise HubFailure(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return found

    # -- writes ----------------------------------------------------------------------------------------------------

    def create_repo(self, body: dict, base: str) -> dict:
        kind = body.get("type") or "model"
        name = f"{body['organization']}/{body['name']}"
        url = f"{base}/{URL_PREFIX[kind]}{name}"
        if (kind, name) in self.repos:
            raise HubFailure(409, "RepoExists", "You already created this repo", url=url)
        if kind == "space" and not body.get("sdk"):
            raise HubFailure(400, "BadRequest", "a Space needs an sdk")
        first = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
        self.repos[kind, name] = Repo(kind, [(commit_id("", first, "initial commit"), first)])
        return {"url": url, "name": name}

    def preupload(self, repo: Repo, body: dict, revision: str) -> dict:
        _, current = repo.at(revision) or (None, {})
        modes = []
        for entry in body["files"]:
            lfs = uses_lfs(entry["path"], base64.b64decode(entry["sample"]))
            old = current.get(entry["path"])
            oid = None if old is None else (hashlib.sha256(old).hexdigest() if lfs else blob_id(old))
            modes.append(
                {"path": entry["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        return {"files": modes, "commitOid": repo.commits[-1][0]}

    def lfs_batch(self, body: dict, base: str) -> dict:
        objects = []
        for obj in body["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_store:  # no actions: the content is already there
                entry["actions"] = {
                    "upload": {"href": f"{base}/lfs-store/{obj['oid']}"},
                    "verify": {"href": f"{base}/lfs-verify"},
                }
            objects.append(entry)
        return {"transfer": "basic", "objects": objects}

    def store_lfs(self, oid: str, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubFailure(400, "BadRequest", f"the uploaded content's sha256 is not {oid}")
        self.lfs_store[oid] = data

    def commit(self, kind: str, name: str, revision: str, lines: list[dict], base: str) -> dict:
        repo = self.repo(kind, name)
        if unquote(revision) != "main":
            raise HubFailure(400, "BadRequest", "commits go to main here")
        head, files = repo.commits[-1]
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head):
            raise HubFailure(412, "PreconditionFailed", "parentCommit is not the head of main")
        files = dict(files)
        for op in lines[1:]:
            self.apply(repo, name, op["key"], op["value"], files)
        sha = commit_id(head, files, header["summary"])
        repo.commits.append((sha, files))
        return {"success": True, "commitOid": sha, "commitUrl": f"{base}/{URL_PREFIX[kind]}{name}/commit/{sha}"}

    def apply(self, repo: Repo, name: str, key: str, value: dict, files: dict[str, bytes]) -> None:
        path = value["path"]
        if key == "file":
            files[path] = base64.b64decode(value["content"])
            repo.lfs.discard(path)
            self.uploads.append((name, path, "inline"))
        elif key == "lfsFile":
            if value["oid"] not in self.lfs_store:
                raise HubFailure(422, "BadRequest", f"LFS object {value['oid']} of {path} was never uploaded")
            files[path] = self.lfs_store[value["oid"]]
            repo.lfs.add(path)
            self.uploads.append((name, path, "lfs"))
        elif key == "deletedFile":
            files.pop(path, None)
        elif key == "deletedFolder":
            for gone in [p for p in files if p.startswith(path.rstrip("/") + "/")]:
                del files[gone]
        else:
            raise HubFailure(400, "BadRequest", f"unknown commit operation {key!r}")

    # -- the server --------------------------------------------------------------------------------------------------

    def __enter__(self) -> str:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self))
        self.server.hub = self
        # Polled for shutdown every 50 ms, not the default 0.5 s.
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def uses_lfs(path: str, sample: bytes) -> bool:
    """The Hub's rule, in short: binary content (a NUL in the first bytes) or a weights file goes through LFS."""
    return b"\0" in sample or path.endswith(".safetensors")


def commit_id(parent: str, files: dict[str, bytes], message: str) -> str:
    digest = hashlib.sha1(f"{parent}\n{message}\n".encode())
    for path in sorted(files):
        digest.update(f"{path} {blob_id(files[path])}\n".encode())
    return digest.hexdigest()


def tree(files: dict[str, bytes], lfs: set[str], under: str, recursive: bool) -> list[dict]:
    """The tree listing of `files` below folder `under`: files, and folders when not recursive."""
    prefix = f"{under.strip('/')}/" if under.strip("/") else ""
    entries, folders = [], set()
    for path in sorted(p for p in files if p.startswith(prefix)):
        rest = path[len(prefix) :]
        if not recursive and "/" in rest:
            folders.add(prefix + rest.split("/")[0])
            continue
        data = files[path]
        entry = {"type": "file", "path": path, "size": len(data), "oid": blob_id(data)}
        if path in lfs:
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        entries.append(entry)
    return [{"type": "directory", "path": f, "oid": "0" * 40, "size": 0} for f in sorted(folders)] + entries


def handler_for(hub: LoopbackHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None):
            self.send_response(status)
            for key, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def json(self, value, status: int = 200):
            self.reply(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

        def body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def authorised(self):
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                raise HubFailure(401, "Unauthorized", "Invalid username or password.")

        def handle_one(self):
            url = urlsplit(self.path)
            base = f"http://{self.headers['Host']}"
            data = self.body() if self.command in ("POST", "PUT", "DELETE") else b""
            try:
                with hub.lock:
                    route(self, url.path, parse_qs(url.query), data, base)
            except HubFailure as e:
                headers = {"X-Error-Code": e.code, "X-Error-Message": str(e), "Content-Type": "application/json"}
                self.reply(e.status, json.dumps(e.body).encode(), headers)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_one

        def log_message(self, *args):
            pass

    return Handler


def route(h, path: str, query: dict, data: bytes, base: str) -> None:
    """Answer one request of handler `h`: the Hub's routes, reads first."""
    info = re.fullmatch(rf"/api/(models|spaces|datasets)/({REPO})(?:/revision/([^/]+))?", path)
    if info and h.command == "GET":
        sha, files = hub_of(h).revision(KINDS[info[1]], info[2], info[3] or "main")
        siblings = [{"rfilename": p} for p in sorted(files)]
        return h.json({"id": info[2], "sha": sha, "siblings": siblings, "private": False})
    if m := re.fullmatch(rf"/api/(models|spaces|datasets)/({REPO})/tree/([^/]+)(/.*)?", path):
        repo = hub_of(h).repo(KINDS[m[1]], m[2])
        _, files = hub_of(h).revision(KINDS[m[1]], m[2], m[3])
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        return h.json(tree(files, repo.lfs, m[4] or "", recursive))
    if m := re.fullmatch(rf"/(spaces/|datasets/)?({REPO})/resolve/([^/]+)/(.+)", path):
        kind = {"spaces/": "space", "datasets/": "dataset"}.get(m[1] or "", "model")
        sha, files = hub_of(h).revision(kind, m[2], m[3])
        file = unquote(m[4])
        if file not in files:
            raise HubFailure(404, "EntryNotFound", f"{file} is not in {m[2]} at {m[3]}")
        if h.command == "GET":
            hub_of(h).downloads.append((m[2], file))
        lfs = file in hub_of(h).repo(kind, m[2]).lfs
        etag = hashlib.sha256(files[file]).hexdigest() if lfs else blob_id(files[file])
        return h.reply(200, files[file], {"ETag": f'"{etag}"', "X-Repo-Commit": sha})
    if path.startswith("/lfs-store/") and h.command == "PUT":  # a presigned upload URL: no token
        hub_of(h).store_lfs(path.rsplit("/", 1)[1], data)
        return h.reply(200, b"")
    if path == "/lfs-verify":
        found = json.loads(data)
        stored = hub_of(h).lfs_store.get(found["oid"])
        return h.json({"ok": True}) if stored is not None and len(stored) == found["size"] else h.json({}, 404)
    if path == "/api/validate-yaml":
        return h.json({"errors": [], "warnings": []})
    h.authorised()  # everything below writes
    write(h, path, data, base)


def write(h, path: str, data: bytes, base: str) -> None:
    hub = hub_of(h)
    if path == "/api/repos/create":
        return h.json(hub.create_repo(json.loads(data), base))
    if m := re.fullmatch(rf"/api/(models|spaces|datasets)/({REPO})/preupload/([^/]+)", path):
        return h.json(hub.preupload(hub.repo(KINDS[m[1]], m[2]), json.loads(data), unquote(m[3])))
    if m := re.fullmatch(rf"/(spaces/|datasets/)?({REPO})\.git/info/lfs/objects/batch", path):
        return h.json(hub.lfs_batch(json.loads(data), base))
    if m := re.fullmatch(rf"/api/(models|spaces|datasets)/({REPO})/commit/([^/]+)", path):
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        return h.json(hub.commit(KINDS[m[1]], m[2], m[3], lines, base))
    if m := re.fullmatch(rf"/api/spaces/({REPO})/variables", path):
        variables = hub.repo("space", m[1]).variables
        if h.command == "POST":
            body = json.loads(data)
            variables[body["key"]] = {"value": body["value"], "description": body.get("description")}
        elif h.command == "DELETE":
            variables.pop(json.loads(data)["key"], None)
        return h.json(variables)
    raise HubFailure(404, "NotFound", f"the loopback Hub has no route {h.command} {path}")


def hub_of(h) -> LoopbackHub:
    return h.server.hub
