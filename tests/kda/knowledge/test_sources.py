"""`--knowledge ours|released`: the authors' released CSVs through the real download code, from a loopback server
standing in for GitHub's raw files, serving CSVs these tests write in the released format."""

import hashlib
import json
import socket

import pytest
from conftest import run_cli
from file_server import FileServer, released_csv

from kda.benchmark import builtin_classes
from kda.checkpoint import load_checkpoint
from kda.knowledge import TINY_TEXT_ENCODER
from kda.knowledge.sources import (
    COMMIT,
    DIGEST_VARIABLE,
    RELEASED_FILES,
    ROOT_VARIABLE,
    fetch_released,
    named_knowledge,
    released_knowledge,
    shipped_path,
)
from kda.knowledge.store import ASPECTS, KnowledgeError


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """The loopback stand-in serving a CSV per dataset, with KDA_RELEASED_ROOT pointing at it and a fresh cache."""
    files = {RELEASED_FILES[d].path: released_csv(d) for d in RELEASED_FILES}
    server = FileServer(files, content_type="text/plain; charset=utf-8")
    monkeypatch.setenv(ROOT_VARIABLE, server.url)
    monkeypatch.setenv("KDA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(DIGEST_VARIABLE, raising=False)
    yield server
    server.close()


def name_digests(monkeypatch, server, *datasets):
    """What a mirror's operator does: name the digest of each file the mirror serves."""
    pairs = [f"{d}={digest(server.files[RELEASED_FILES[d].path])}" for d in datasets]
    monkeypatch.setenv(DIGEST_VARIABLE, ",".join(pairs))


@pytest.mark.parametrize("dataset", list(RELEASED_FILES))
def test_every_class_is_bound_with_its_three_descriptions_and_provenance(mirror, monkeypatch, dataset):
    name_digests(monkeypatch, mirror, dataset)
    knowledge = released_knowledge(dataset)
    classes = builtin_classes(dataset)
    assert knowledge.class_ids == [c.id for c in classes]  # keyed by the benchmark's ids, in its order
    last = classes[-1]
    entry = knowledge.get(last.id)
    assert entry.name == last.name.lower() and [d.aspect for d in entry.descriptions] == list(ASPECTS)
    assert entry.descriptions[1].text == f"{last.name}: the visual, in words, of class {len(classes) - 1}"
    provenance = knowledge.provenance
    assert provenance["commit"] == COMMIT and provenance["licence"] == "Apache-2.0"
    assert provenance["source"] == mirror.url + RELEASED_FILES[dataset].path
    assert provenance["sha256"] == digest(mirror.files[RELEASED_FILES[dataset].path])


def test_a_file_that_is_not_the_pinned_one_is_refused_and_not_kept(mirror, tmp_path):
    with pytest.raises(KnowledgeError, match=f"expected {RELEASED_FILES['UCF'].sha256}.*{DIGEST_VARIABLE}=UCF="):
        released_knowledge("UCF")
    assert not list((tmp_path / "cache").rglob("*.csv"))


def test_a_changed_byte_is_refused(mirror, monkeypatch):
    name_digests(monkeypatch, mirror, "UCF")
    path = RELEASED_FILES["UCF"].path
    mirror.files[path] = mirror.files[path].replace(b"class 7", b"class 8", 1)
    with pytest.raises(KnowledgeError, match="refused"):
        released_knowledge("UCF")


def test_a_cached_copy_is_used_offline_and_checked_again(mirror, monkeypatch):
    name_digests(monkeypatch, mirror, "UCF")
    first = released_knowledge("UCF")
    cached = fetch_released("UCF")
    mirror.close()  # offline from now on
    assert released_knowledge("UCF") == first
    cached.write_bytes(cached.read_bytes().replace(b"class 7", b"class 8", 1))  # a damaged cache is not trusted
    with pytest.raises(KnowledgeError, match="cannot fetch the released UCF descriptions"):
        released_knowledge("UCF")


def test_offline_without_a_copy_is_one_line_naming_the_alternatives(tmp_path, monkeypatch, ucf_synth):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the block ends
    monkeypatch.setenv(ROOT_VARIABLE, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KDA_CACHE", str(tmp_path / "cache"))
    args = ["train", "--root", ucf_synth, "--dataset", "UCF", "--out", tmp_path / "ck", "--knowledge", "released"]
    code, _, stderr = run_cli(*args, "--text-encoder", TINY_TEXT_ENCODER, "--quiet")
    assert code == 1 and len(stderr.strip().splitlines()) == 1, stderr
    assert "cannot fetch the released UCF descriptions" in stderr and "--knowledge ours" in stderr


def test_a_class_missing_from_the_file_is_named(mirror, monkeypatch):
    path = RELEASED_FILES["UCF"].path
    mirror.files[path] = released_csv("UCF", drop=3)
    name_digests(monkeypatch, mirror, "UCF")
    missing = builtin_classes("UCF")[3].id
    with pytest.raises(KnowledgeError, match=f"lack 1 of the benchmark's 101 classes: {missing}$"):
        released_knowledge("UCF")


@pytest.mark.parametrize(
    "value", ["UCF=abc", "Kinetics=" + "0" * 64, "UCF:" + "0" * 64], ids=["short", "unknown", "no-equals"]
)
def test_a_malformed_digest_override_is_named(mirror, monkeypatch, value):
    monkeypatch.setenv(DIGEST_VARIABLE, value)
    with pytest.raises(KnowledgeError, match=f"{DIGEST_VARIABLE} must read DATASET=<64 hex digits>"):
        released_knowledge("UCF")


def test_ours_is_the_shipped_file():
    knowledge = named_knowledge("ours", "UCF")
    assert knowledge.source == str(shipped_path("UCF")) and len(knowledge) == 101


def test_a_checkpoint_trained_on_released_knowledge_records_where_it_came_from(
    mirror, monkeypatch, ucf_synth, tmp_path
):
    name_digests(monkeypatch, mirror, "UCF")
    out = tmp_path / "ck"
    code, _, stderr = run_cli(
        "train", "--root", ucf_synth, "--dataset", "UCF", "--out", out, "--knowledge", "released",
        "--text-encoder", TINY_TEXT_ENCODER, "--epochs", 1, "--batches-per-epoch", 1, "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    ckpt = load_checkpoint(out)
    assert ckpt.provenance["knowledge"] == "released"
    assert ckpt.knowledge.provenance["commit"] == COMMIT
    assert ckpt.knowledge.provenance["sha256"] == digest(mirror.files[RELEASED_FILES["UCF"].path])
    assert ckpt.knowledge.get("ApplyEyeMakeup").descriptions[0].text.startswith("Apply Eye Makeup: the introduction")
    assert json.loads((out / "config.json").read_text())["knowledge"]["provenance"]["licence"] == "Apache-2.0"
