"""What every module that fetches or checks files shares: the Hub id prefix and the SHA-256 of a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

HUB_PREFIX = "hf-hub:"  # `hf-hub:ORG/REPO` names a Hugging Face Hub repository (open_clip's convention)
CHUNK_BYTES = 1 << 20  # read files in 1 MiB blocks: weight files are hundreds of MB


def sha256_of(path: str | Path) -> str:
    """The SHA-256 hex digest of the file at `path`, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def split_hub_id(text: str) -> tuple[str, str | None]:
    """`hf-hub:OWNER/NAME[@REVISION]` -> ("OWNER/NAME", REVISION or None); a revision (a commit id, branch or
    tag) pins what is fetched, so a repository's later commits do not change it."""
    repo, _, revision = text.removeprefix(HUB_PREFIX).partition("@")
    return repo, revision or None
