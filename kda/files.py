"""What every module that fetches or checks files shares: the cache folder, the Hub id prefix, the SHA-256 of a
file, and one resuming download (weights, the benchmark archive, the released knowledge)."""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from kda.errors import KdaError

HUB_PREFIX = "hf-hub:"  # `hf-hub:ORG/REPO` names a Hugging Face Hub repository (open_clip's convention)
CHUNK_BYTES = 1 << 20  # read files in 1 MiB blocks: weight files are hundreds of MB
TIMEOUT_S = 30.0
MAX_RESUMES = 5  # an interrupted transfer is resumed (HTTP Range) at most this many times
SPACE_MARGIN_BYTES = 64 << 20  # keep this much free beyond what a download or unpack needs


class DownloadError(KdaError):
    """A file cannot be had: the server is unreachable, refuses, sends a web page, or keeps breaking off."""


class DiskFullError(KdaError):
    pass


def cache_dir() -> Path:
    """Root of kda's cache: $KDA_CACHE, else $XDG_CACHE_HOME/kda, else ~/.cache/kda."""
    if os.environ.get("KDA_CACHE"):
        return Path(os.environ["KDA_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "kda"
    return Path.home() / ".cache" / "kda"


def sha256_of(path: str | Path) -> str:
    """The SHA-256 hex digest of the file at `path`, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, path: Path, progress: bool = True, hint: str = "") -> Path:
    """Stream `url` to `path` through `path.part`, resuming an interrupted transfer with HTTP Range requests
    (also one left by an earlier run); a progress bar shows the bytes. `hint` ends every error message: what the
    user can do instead (a local copy, another option)."""
    from tqdm import tqdm

    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    # `delay`: no bar at all when the first request fails at once (no network), only the error.
    with tqdm(unit="B", unit_scale=True, desc=path.name, disable=not progress, delay=0.5) as bar:
        for _ in range(MAX_RESUMES + 1):
            offset = part.stat().st_size if part.exists() else 0
            if transfer(url, part, offset, bar, hint):
                part.replace(path)
                return path
    raise DownloadError(
        f"the download of {url} was interrupted {MAX_RESUMES + 1} times; run again to resume from "
        f"{part.stat().st_size if part.exists() else 0} bytes{'; or ' + hint if hint else ''}"
    )


def transfer(url: str, part: Path, offset: int, bar, hint: str = "") -> bool:
    """One HTTP request appending to `part` from `offset`; True when the file is complete, False when the
    connection broke off (resume). Errors that resuming cannot mend are raised."""
    then = f"; {hint}" if hint else ""
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the part is complete
            return True
        raise DownloadError(f"{url} answered HTTP {e.code} {e.reason}; check the URL{then}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DownloadError(f"cannot reach {url} ({getattr(e, 'reason', e)}){then}") from e
    with response:
        if "text/html" in response.headers.get("Content-Type", ""):
            raise DownloadError(f"{url} sent a web page, not the file (a quota or confirmation page?){then}")
        resumed = response.status == 206
        if offset and not resumed:  # the server ignored the Range header: start over
            offset = 0
        length = int(response.headers.get("Content-Length") or 0)
        check_space(part.parent, length, f"downloading {url}")
        bar.reset(total=offset + length if length else None)
        bar.update(offset)
        received = 0
        try:
            with part.open("ab" if offset else "wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as e:
            if isinstance(e, TimeoutError) and not received:
                raise DownloadError(f"{url} stopped sending data ({e}){then}") from e
            return False
        except OSError as e:
            raise disk_error(e, part) from e
    return not length or received >= length


def check_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed and free < needed + SPACE_MARGIN_BYTES:
        raise DiskFullError(
            f"{what} needs {needed / 2**30:.2f} GiB but {folder} has {free / 2**30:.2f} GiB free; free some space "
            "or choose another `out` (or $KDA_CACHE for the download)"
        )


def disk_error(error: OSError, path: Path) -> Exception:
    if error.errno == errno.ENOSPC:
        return DiskFullError(f"the disk is full while writing {path}; free some space and run again (it resumes)")
    return error


def split_hub_id(text: str) -> tuple[str, str | None]:
    """`hf-hub:OWNER/NAME[@REVISION]` -> ("OWNER/NAME", REVISION or None); a revision (a commit id, branch or
    tag) pins what is fetched, so a repository's later commits do not change it."""
    repo, _, revision = text.removeprefix(HUB_PREFIX).partition("@")
    return repo, revision or None
