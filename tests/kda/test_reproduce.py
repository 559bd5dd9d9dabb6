"""`kda reproduce` against a loopback HTTP server serving a small archive in the real layout
(avgzsl_benchmark_datasets/UCF/...: real class names and splits, synthetic features from the shipped knowledge)."""

import hashlib
import json
import shutil
import socket
import zipfile

import pytest
from file_server import FileServer, released_csv

from kda.checkpoint import load_checkpoint
from kda.cli import main
from kda.files import DiskFullError, DownloadError
from kda.knowledge import TINY_TEXT_ENCODER
from kda.reproduce import (
    ARCHIVE_NAME,
    ArchiveError,
    ChecksumMismatchError,
    dataset_prefix_in,
    fetch_archive,
    record_path,
    reproduce,
    unpack,
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """avgzsl_benchmark_datasets.zip with UCF's cls features, made by kda.synth from the shipped UCF knowledge."""
    from kda.knowledge.class_matrix import load_class_matrix
    from kda.knowledge.sources import shipped_path
    from kda.synth import SynthConfig, write_synthetic_benchmark

    folder = tmp_path_factory.mktemp("archive")
    root = folder / "avgzsl_benchmark_datasets" / "UCF"
    knowledge = load_class_matrix(shipped_path("UCF"), TINY_TEXT_ENCODER)
    write_synthetic_benchmark(root, "UCF", "cls", SynthConfig(train_videos=4, eval_videos=2), knowledge)
    for extra in ("knowledge_vectors.npz", "synthetic.json"):  # not in the public archive
        (root / extra).unlink()
    path = folder / ARCHIVE_NAME
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file() and file != path:
                zf.write(file, file.relative_to(folder).as_posix())
    return path


@pytest.fixture
def server(archive):
    s = FileServer({ARCHIVE_NAME: archive.read_bytes()})
    yield s
    s.close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_reproduce_end_to_end_with_an_interrupted_download(server, archive, tmp_path, capsys):
    server.cut = 1
    out = tmp_path / "r"
    url = server.url + ARCHIVE_NAME
    args = ["reproduce", "--dataset", "UCF", "--setting", "cls", "--source", url, "--out", str(out)]
    assert main([*args, "--text-encoder", TINY_TEXT_ENCODER, "--epochs", "1", "--quiet"]) == 0
    size = archive.stat().st_size
    assert server.ranges == [None, f"bytes={size - size // 2}-"]  # resumed where the first transfer broke off
    # The digest recorded at the first download is the archive's own, and the cached copy is the archive.
    assert record_path().read_text() == hashlib.sha256(archive.read_bytes()).hexdigest() + "\n"
    assert (record_path().parent / ARCHIVE_NAME).read_bytes() == archive.read_bytes()
    results = json.loads((out / "results.json").read_text())
    run = results["runs"][0]
    assert run["preset"] == "paper" and run["checkpoint"] == str(out / "paper")
    markdown = (out / "results.md").read_text()
    for published in ("41.34", "37.72", "50.78", "44.64", "55.97", "46.96"):  # AVCA, TCaF, ClipClap on UCF cls
        assert published in markdown
    assert f"{run['test']['hm']:.2f}" in markdown and "app.py --checkpoint" in markdown
    ckpt = load_checkpoint(out / "paper")  # ready for app.py --checkpoint
    assert ckpt.setting == "cls" and ckpt.text_encoder.startswith("kda-tiny-text") and len(ckpt.classes) == 48
    assert ckpt.feature_weights == "pretrained" and ckpt.provenance["reproduce"]["source"] == url
    assert run["test"] == ckpt.metrics["test"]  # results.json reports the checkpoint's own test scores
    # Only UCF's class splits and cls features were unpacked.
    assert sorted(p.name for p in (out / "data" / "UCF" / "features").iterdir()) == ["cls_features"]
    t = run["test"]
    assert capsys.readouterr().out.splitlines() == [
        f"paper     ours      test S {t['seen']:.2f}  U {t['unseen']:.2f}  HM {t['hm']:.2f}  ZSL {t['zsl']:.2f}",
        f"results: {out}/results.md; checkpoint: {out / 'paper'}",
    ]


def test_released_preset_beside_the_paper_one(server, tmp_path):
    fast = {"batch_size": 64, "batches_per_epoch": 2}  # the released 50 x 2048 per epoch, made small
    results = reproduce(
        "UCF",
        "cls",
        tmp_path / "r",
        source=server.url + ARCHIVE_NAME,
        text_encoder=TINY_TEXT_ENCODER,
        also_released=True,
        epochs=1,
        progress=False,
        log=lambda m: None,
        train_overrides=fast,
    )
    paper, released = results["runs"]
    assert (paper["preset"], released["preset"]) == ("paper", "released")
    # paper: beta chosen on validation and applied to test; released: no validation, beta chosen on test.
    assert set(paper["validation"]) == set(paper["test"]) and paper["validation"]["beta"] == paper["test"]["beta"]
    assert load_checkpoint(tmp_path / "r" / "paper").beta == paper["validation"]["beta"]
    assert released["validation"] is None
    assert "TEST set" in (tmp_path / "r" / "results.md").read_text()
    assert load_checkpoint(tmp_path / "r" / "released").model.cfg.double_skip is True


def test_both_knowledge_sources_side_by_side(server, tmp_path, monkeypatch):
    from kda.knowledge.sources import DIGEST_VARIABLE, RELEASED_FILES, ROOT_VARIABLE

    csv_file = released_csv("UCF")
    server.files[RELEASED_FILES["UCF"].path] = csv_file
    monkeypatch.setenv(ROOT_VARIABLE, server.url)
    monkeypatch.setenv(DIGEST_VARIABLE, f"UCF={hashlib.sha256(csv_file).hexdigest()}")
    out = tmp_path / "r"
    fast = {"batch_size": 64, "batches_per_epoch": 2}
    source = server.url + ARCHIVE_NAME
    options = {"text_encoder": TINY_TEXT_ENCODER, "epochs": 1, "progress": False, "log": lambda m: None}
    reproduce("UCF", "cls", out, source=source, knowledge="both", train_overrides=fast, **options)
    ours, released = json.loads((out / "results.json").read_text())["runs"]
    assert (ours["knowledge"], released["knowledge"]) == ("ours", "released")
    assert released["checkpoint"] == str(out / "paper-released-knowledge")
    assert load_checkpoint(released["checkpoint"]).knowledge.provenance["source"].endswith("UCF/class-split/UCF.csv")
    assert "commit" not in load_checkpoint(ours["checkpoint"]).knowledge.provenance  # the shipped texts
    rows = [line for line in (out / "results.md").read_text().splitlines() if "(this run)" in line]
    assert [row.split(" | ")[1] for row in rows] == ["ours (assets/knowledge)", "the authors' (released CSV)"]
    assert f"{released['test']['hm']:.2f}" in rows[1] and f"{ours['test']['hm']:.2f}" in rows[0]


def test_local_archive_and_checksum_enforced_after_the_first(archive, tmp_path, server):
    assert fetch_archive(str(archive), progress=False) == archive
    recorded = record_path().read_text().strip()
    other = tmp_path / ARCHIVE_NAME
    shutil.copy(archive, other)
    with zipfile.ZipFile(other, "a") as zf:
        zf.writestr("avgzsl_benchmark_datasets/extra.txt", "not the published archive")
    with pytest.raises(ChecksumMismatchError, match=recorded):
        fetch_archive(str(other), progress=False)
    server.files[ARCHIVE_NAME] = other.read_bytes()  # the server now serves a different file
    with pytest.raises(ChecksumMismatchError, match=recorded):
        fetch_archive(server.url + ARCHIVE_NAME, progress=False)
    assert not (record_path().parent / ARCHIVE_NAME).exists()  # the bad copy is not kept


def test_no_network_is_one_clear_line(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/{ARCHIVE_NAME}"
    with pytest.raises(DownloadError, match="cannot reach"):
        fetch_archive(url, progress=False)
    args = ["reproduce", "--dataset", "UCF", "--setting", "cls", "--source", url, "--out", str(tmp_path / "r")]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("kda reproduce: error: cannot reach") and "--source" in err and len(err.splitlines()) == 1


def test_full_disk_is_named_before_writing(server, monkeypatch):
    import kda.files

    monkeypatch.setattr(kda.files.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 0))
    with pytest.raises(DiskFullError, match="GiB free"):
        fetch_archive(server.url + ARCHIVE_NAME, progress=False)


def test_archive_without_the_dataset(archive, tmp_path):
    fetch_archive(str(archive), progress=False)
    with pytest.raises(ArchiveError, match="no ActivityNet dataset.*holds UCF"):
        unpack(archive, "ActivityNet", "cls", tmp_path)
    with pytest.raises(ArchiveError, match="no main features"):
        unpack(archive, "UCF", "main", tmp_path)
    not_zip = tmp_path / "page.zip"
    not_zip.write_text("<html>quota exceeded</html>")
    with pytest.raises(ArchiveError, match="not a zip archive"):
        unpack(not_zip, "UCF", "cls", tmp_path)


def test_the_readme_spelling_of_the_split_folder_is_accepted():
    names = ["avgzsl_benchmark_datasets/UCF/class_split/all_class.txt", "x/VGGSound/class-split/all_class.txt"]
    assert dataset_prefix_in(names, "UCF") == "avgzsl_benchmark_datasets/UCF/"
    assert dataset_prefix_in(names, "VGGSound") == "x/VGGSound/"
    assert dataset_prefix_in(names, "ActivityNet") is None


def test_published_numbers_per_dataset_and_setting():
    from kda.reproduce import published

    assert published("UCF", "main") == [{"method": "AVCA", "features": "main", "hm": 27.15, "zsl": 20.01}]
    cls = {row["method"]: (row["hm"], row["zsl"]) for row in published("VGGSound", "cls")}
    assert cls == {"AVCA": (8.31, 6.91), "TCaF": (8.77, 7.41), "ClipClap-GZSL": (16.18, 11.53)}
