"""The pretrained-weights registry and cache, through real downloads from file:// URLs (no network)."""

import hashlib
import pickle

import numpy as np
import pytest
import torch

from kda.media import weights
from kda.media.weights import ChecksumError, WeightFile, WeightsError, WeightsUnavailableError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


def served(tmp_path, name: str, payload: bytes) -> tuple[str, str]:
    """A file to download (file:// URL) and its SHA-256."""
    source = tmp_path / "server" / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(payload)
    return source.as_uri(), hashlib.sha256(payload).hexdigest()


def tensor_file(tmp_path, name="net.pth") -> tuple[str, str, dict]:
    state = {"layer.weight": torch.arange(6.0).reshape(2, 3), "layer.bias": torch.ones(2)}
    path = tmp_path / "made" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    url, digest = served(tmp_path, name, path.read_bytes())
    return url, digest, state


def test_cache_dir_follows_kda_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("KDA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "kda"
    monkeypatch.setenv("KDA_CACHE", str(tmp_path / "mine"))
    assert weights.cache_dir() == tmp_path / "mine"


def test_download_verify_and_load_by_name(tmp_path, cache):
    url, digest, state = tensor_file(tmp_path)
    entry = WeightFile("net", url, "net.pth", digest)
    loaded = weights.load_state_dict(entry, progress=False)
    assert set(loaded) == set(state)
    assert torch.equal(loaded["layer.weight"], state["layer.weight"])
    assert (cache / "net.pth").exists()
    (tmp_path / "server" / "net.pth").unlink()  # the cached, verified copy is used from now on
    assert torch.equal(weights.load_state_dict(entry, progress=False)["layer.bias"], state["layer.bias"])


def test_a_damaged_cache_entry_is_downloaded_again(tmp_path, cache):
    url, digest, _ = tensor_file(tmp_path)
    entry = WeightFile("net", url, "net.pth", digest[:8])  # a torch.hub-style prefix is enough
    path = weights.fetch(entry, progress=False)
    path.write_bytes(b"damaged")
    assert weights.sha256_of(weights.fetch(entry, progress=False)) == digest


def test_a_second_mismatch_fails_loudly(tmp_path, cache):
    url, digest, _ = tensor_file(tmp_path)
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(ChecksumError, match="net.pth") as info:
        weights.fetch(WeightFile("net", url, "net.pth", wrong), progress=False)
    assert digest in str(info.value) and str(cache / "net.pth") in str(info.value)
    assert not (cache / "net.pth").exists()


def test_unpinned_files_are_trusted_on_first_use_then_enforced(tmp_path, cache):
    url, digest = served(tmp_path, "blob.pth", b"first version")
    entry = WeightFile("blob", url, "blob.pth", None)
    weights.fetch(entry, progress=False)
    assert (cache / "blob.pth.sha256").read_text().strip() == digest
    (tmp_path / "server" / "blob.pth").write_bytes(b"a different file now")
    (cache / "blob.pth").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="recorded in"):
        weights.fetch(entry, progress=False)


def test_offline_names_the_file_the_url_and_where_to_put_it(cache):
    entry = WeightFile("c3d", "http://127.0.0.1:9/c3d.pickle", "c3d.pickle", None)
    with pytest.raises(WeightsUnavailableError) as info:
        weights.fetch(entry, progress=False)
    message = str(info.value)
    assert "c3d.pickle" in message and "http://127.0.0.1:9/c3d.pickle" in message
    assert str(cache / "c3d.pickle") in message and "offline" in message


class Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_pickled_code_is_refused(tmp_path, cache):
    url, digest = served(tmp_path, "evil.pth", pickle.dumps({"w": Payload()}, protocol=2))
    with pytest.raises(WeightsError, match="weights_only"):
        weights.load_state_dict(WeightFile("evil", url, "evil.pth", digest), progress=False)


def test_npz_parameter_files_load_without_pickle(tmp_path, cache):
    made = tmp_path / "pca.npz"
    means = np.linspace(-1, 1, 128)
    np.savez(made, pca_eigen_vectors=np.eye(128), pca_means=means)
    url, digest = served(tmp_path, "pca.npz", made.read_bytes())
    loaded = weights.load_state_dict(WeightFile("pca", url, "pca.npz", digest), progress=False)
    assert sorted(loaded) == ["pca_eigen_vectors", "pca_means"]
    np.testing.assert_array_equal(loaded["pca_eigen_vectors"].numpy(), np.eye(128))  # the arrays as saved
    np.testing.assert_array_equal(loaded["pca_means"].numpy(), means)


def test_registry_pins_the_public_files():
    assert set(weights.REGISTRY) >= {"c3d-sports1m", "vggish", "vggish-pca"}
    for entry in weights.REGISTRY.values():
        assert entry.url.endswith(entry.filename)
        if entry.sha256:
            # torch.hub release names carry the first 8 hex digits of the file's SHA-256.
            hub_prefix = entry.filename.rsplit("-", 1)[-1].split(".")[0]
            assert entry.sha256.startswith(hub_prefix)
    with pytest.raises(WeightsError, match="choose one of"):
        weights.lookup("nope")
