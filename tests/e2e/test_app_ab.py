"""Knowledge A/B through the real app (`python app.py`, bundled demo checkpoint, `gradio_client`): `/knowledge_ab`
gives the checkpoint's recorded test metrics before any edit, follows the visitor's edits (and theirs alone),
and equals `kda evaluate --knowledge` on the visitor's exported knowledge to 1e-9."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

try:
    from app_server import CHECKPOINT, NO_LLM, start_app
except ImportError:  # tests/ imported as a package
    from tests.app_server import CHECKPOINT, NO_LLM, start_app

MISLEADING = (
    "Boiling pasta in a big pot on a kitchen stove.",
    "Steam rises while a cook stirs noodles with a wooden spoon.",
    "Bubbling water and the clink of a spoon against metal.",
)
METRICS = ("seen", "unseen", "hm", "zsl", "beta")

pytestmark = pytest.mark.skipif(not CHECKPOINT.is_dir(), reason="no demo checkpoint: run `make checkpoint`")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    server = start_app(tmp_path_factory.mktemp("app") / "app.log", env=NO_LLM)
    yield server
    server.stop()
    print(server.log_tail())


def ab(client) -> dict:
    """The comparison as JSON: the last output of /knowledge_ab."""
    return client.predict(api_name="/knowledge_ab")[-1]


def test_knowledge_ab_follows_an_edit_and_equals_kda_evaluate(app, tmp_path):
    recorded = json.loads((CHECKPOINT / "config.json").read_text())["metrics"]["test"]
    visitor, other = app.client(tmp_path / "visitor"), app.client(tmp_path / "other")
    assert "/knowledge_ab" in visitor.view_api(print_info=False, return_format="dict")["named_endpoints"]
    first = ab(visitor)
    assert {k: first["checkpoint"][k] for k in METRICS} == {k: recorded[k] for k in METRICS}
    assert first["edited"] == first["checkpoint"] and first["moves"] == [] and first["classes"] == []

    classes = json.loads((CHECKPOINT / "config.json").read_text())["classes"]
    target = next(c["id"] for c in classes if not c["seen"])
    visitor.predict(target, "Boiling Pasta", *MISLEADING, api_name="/edit")
    after = ab(visitor)
    assert after["edited"]["unseen"] < after["checkpoint"]["unseen"]  # a misleading edit costs the benchmark
    assert after["classes"][0]["class_id"] == target and after["classes"][0]["edited"]
    assert after["moves"] and sum(m["videos"] for m in after["moves"]) > 0
    assert ab(other) == first  # another visitor's knowledge is untouched

    exported = Path(visitor.predict(api_name="/export_knowledge"))
    code, stdout, stderr = run_cli(
        "evaluate", "--checkpoint", CHECKPOINT, "--knowledge", exported, "--json", tmp_path / "cli.json"
    )
    assert code == 0, stderr
    cli = json.loads((tmp_path / "cli.json").read_text())
    assert all(abs(cli[k] - after["edited"][k]) <= 1e-9 for k in METRICS), (cli, after["edited"])
    assert "Boiling Pasta (unseen, edited)" in stdout

    visitor.predict(target, False, api_name="/reset")
    assert ab(visitor) == first  # reset restores the checkpoint's rows exactly
