"""Pretrained weight files: a registry (name -> URL, SHA-256, file name), a verified cache, loaders.

Files live under `cache_dir() / "weights"`; `cache_dir()` is `$KDA_CACHE`, else `$XDG_CACHE_HOME/kda`,
else `~/.cache/kda`. Every load re-hashes the file; a mismatch triggers one fresh download, and a
second mismatch is an error. Nothing here unpickles code: `.pth`/`.pickle` files go through
`torch.load(weights_only=True)` and `.npz` files through `np.load(allow_pickle=False)`.

Checksums: a pinned `sha256` is either the full 64-hex digest or, where only a prefix is public, that
prefix (at least 8 hex digits), which the digest must start with. torch.hub's naming convention puts
the first 8 hex digits of a file's SHA-256 into its release name (`vggish-10086976.pth`), which is
where the prefixes below come from. Where no digest is published at all (`sha256=None`), the digest
seen at the first download is recorded next to the file and every later load is checked against it
(trust on first use); the registry says so in `note`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kda import files
from kda.errors import KdaError
from kda.files import cache_dir, sha256_of

MIN_PREFIX_HEX = 8  # shortest checksum prefix accepted (torch.hub's file-name convention)


class WeightsError(KdaError):
    """A weight file is unknown, cannot be fetched, or is not the file it should be."""


class WeightsUnavailableError(WeightsError):
    """The file is not cached and cannot be downloaded (offline, server down)."""


class ChecksumError(WeightsError):
    """The file's SHA-256 differs from the pinned one, twice."""


@dataclass(frozen=True)
class WeightFile:
    """One public weight file. `sha256`: full digest, a public prefix of it, or None (see module doc)."""

    name: str
    url: str
    filename: str
    sha256: str | None
    note: str = ""

    def __post_init__(self):
        digest = self.sha256
        if digest is not None and (len(digest) < MIN_PREFIX_HEX or len(digest) > 64 or not is_hex(digest)):
            raise WeightsError(f"{self.name}: sha256 must be 8 to 64 hex digits, got {digest!r}")


def is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


TORCHVGGISH_RELEASE = "https://github.com/harritaylor/torchvggish/releases/download/v0.1"

REGISTRY: dict[str, WeightFile] = {
    w.name: w
    for w in (
        WeightFile(
            name="c3d-sports1m",
            url="http://imagelab.ing.unimore.it/files/c3d_pytorch/c3d.pickle",
            filename="c3d.pickle",
            sha256=None,
            note="C3D Sports-1M weights converted to PyTorch by the DavideA/c3d-pytorch project (keys "
            "conv1.weight ... fc8.bias); the file the AVCA benchmark loaded. No checksum is published: "
            "the digest of the first download is recorded and enforced from then on.",
        ),
        WeightFile(
            name="vggish",
            url=f"{TORCHVGGISH_RELEASE}/vggish-10086976.pth",
            filename="vggish-10086976.pth",
            # Full digest as quoted by a public installer script that pins this file; its first 8
            # digits agree with the torch.hub prefix in the release file name.
            sha256="10086976245803799d9194e9a73d9b6c1549c71d1b80106f5cade5608a561f4b",
            note="VGGish (AudioSet) ported from TensorFlow by harritaylor/torchvggish (keys features.*, embeddings.*).",
        ),
        WeightFile(
            name="vggish-pca",
            url=f"{TORCHVGGISH_RELEASE}/vggish_pca_params-4d878af3.npz",
            filename="vggish_pca_params-4d878af3.npz",
            # Full digest as pinned by a public project that versions this asset; it starts with the
            # torch.hub prefix in the release name.
            sha256="4d878af3e306defbfb37095365aa7e5a6cecb86bad13e859e626151c4e6a8b9d",
            note="AudioSet PCA/whitening parameters (pca_eigen_vectors 128x128, pca_means 128) as the .npz "
            "the benchmark's Postprocessor read (Google publishes the same parameters as "
            "storage.googleapis.com/audioset/vggish_pca_params.npz). The .npz is chosen over the release's "
            "vggish_pca_params-970ea276.pth because it loads without unpickling.",
        ),
    )
}


def weights_dir() -> Path:
    return cache_dir() / "weights"


def lookup(name: str | WeightFile) -> WeightFile:
    if isinstance(name, WeightFile):
        return name
    if name not in REGISTRY:
        raise WeightsError(f"unknown weight file {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def expected_digest(weight: WeightFile, path: Path) -> str | None:
    """The pinned digest (or prefix); for unpinned files, the one recorded at first download."""
    if weight.sha256 is not None:
        return weight.sha256
    record = record_path(path)
    return record.read_text().strip() if record.exists() else None


def record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def matches(digest: str, expected: str | None) -> bool:
    return expected is None or digest.startswith(expected)


def fetch(name: str | WeightFile, *, progress: bool = True) -> Path:
    """Path of a verified local copy of a weight file, downloading it if needed (once more on mismatch)."""
    weight = lookup(name)
    path = weights_dir() / weight.filename
    mismatches = 0
    if path.exists():
        digest, expected = sha256_of(path), expected_digest(weight, path)
        if matches(digest, expected):
            if expected is None:
                record_path(path).write_text(digest + "\n")  # a copy placed by hand: trusted from now on
            return path
        mismatches = 1  # a damaged or replaced cache entry: fetch it again
    while True:
        download(weight, path, progress=progress)
        digest = sha256_of(path)
        expected = expected_digest(weight, path)
        if matches(digest, expected):
            if expected is None:
                record_path(path).write_text(digest + "\n")  # trust on first use, enforced from now on
            return path
        path.unlink()
        mismatches += 1
        if mismatches >= 2:
            shown = f"{expected}..." if len(expected) < 64 else expected
            where = f" (recorded in {record_path(path)})" if weight.sha256 is None else ""
            raise ChecksumError(
                f"{weight.filename} from {weight.url} has SHA-256 {digest}, expected {shown}{where}; the "
                f"server may be serving a different file. Fetch it by hand, check it, and place it at {path}"
            )


def download(weight: WeightFile, path: Path, *, progress: bool) -> None:
    hint = (
        f"on a machine without network, download {weight.filename} elsewhere and copy it to {path} (the cache is "
        "$KDA_CACHE, $XDG_CACHE_HOME/kda or ~/.cache/kda), or use the offline weights"
    )
    try:
        files.download(weight.url, path, progress, hint)
    except files.DownloadError as e:
        raise WeightsUnavailableError(str(e)) from e


def load_state_dict(name: str | WeightFile, *, progress: bool = True) -> dict:
    """The tensors of a weight file, by their names in the file; never unpickles code."""
    import torch

    path = fetch(name, progress=progress)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return {key: torch.from_numpy(np.array(arrays[key])) for key in arrays.files}
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with code in it, or a damaged file
        raise WeightsError(f"{path} is not a plain tensor file that loads with weights_only=True: {e}") from e
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, expected a dict of tensors")
    return state
