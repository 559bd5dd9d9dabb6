"""The model card `kda push` writes, generated from a checkpoint's config.json (the upload itself, to the
loopback Hub: tests/e2e/test_push.py)."""

import json
import shutil

import pytest

from kda.cli import main
from kda.hub import HubError, check_repo, model_card


@pytest.fixture
def checkpoint(tiny_checkpoint, tmp_path):
    return shutil.copytree(tiny_checkpoint, tmp_path / "ck")


def test_card_says_what_the_checkpoint_is_and_how_to_open_it(checkpoint, capsys):
    assert main(["push", str(checkpoint), "--repo", "someone/kda-ucf-cls", "--card-only"]) == 0
    card = (checkpoint / "README.md").read_text()
    config = json.loads((checkpoint / "config.json").read_text())
    test = config["metrics"]["test"]
    assert card.startswith("---\nlibrary_name: kda\n")
    assert "# KDA checkpoint: UCF, cls features" in card
    assert "48 classes: 42 seen, 6 unseen" in card
    assert f"`{config['text_encoder']}`" in card and "| preset | `paper` |" in card
    assert "selected on validation" in card
    assert f"| test | {test['seen']:.2f} | {test['unseen']:.2f} | {test['hm']:.2f} | {test['zsl']:.2f} |" in card
    assert "python app.py --checkpoint hf-hub:someone/kda-ucf-cls" in card
    assert 'Studio.load("hf-hub:someone/kda-ucf-cls")' in card
    assert '"dataset": "UCF"' in card and '"kda_version"' in card  # the provenance, verbatim
    assert capsys.readouterr().out == f"model card written to {checkpoint / 'README.md'}\n"


def test_card_of_a_released_checkpoint_warns_about_test_selection():
    config = {
        "features": {"setting": "main", "audio_dim": 512, "visual_dim": 512},
        "text_encoder": "ViT-B-32-quickgelu@openai",
        "classes": [{"id": "a", "seen": True}, {"id": "b", "seen": False}],
        "beta": 0.2,
        "provenance": {"dataset": "VGGSound", "protocol": "released", "train": {"preset": "released"}},
        "metrics": {"test": {"seen": 10.0, "unseen": 5.0, "hm": 6.67, "zsl": 7.0, "beta": 0.2}, "best_epoch": 3},
    }
    card = model_card(config, "me/x")
    assert "**test** set" in card and "| preset | `released` |" in card and "best epoch 3" in card
    assert "validation |" not in card  # no validation row when there was none


@pytest.mark.parametrize("repo", ["noslash", "a/b/c", "/name", "hf-hub:a/b"])
def test_bad_repository_ids(repo):
    with pytest.raises(HubError, match="OWNER/NAME"):
        check_repo(repo)
