"""Sharing a checkpoint on the Hugging Face Hub: a model card generated from its config.json, and the upload.

The card (README.md in the checkpoint folder) says what the checkpoint is from config.json alone: dataset,
feature setting, text encoder, metrics, protocol, provenance, and how to open it in the app
(`python app.py --checkpoint hf-hub:OWNER/NAME`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kda.checkpoint import read_config
from kda.errors import KdaError
from kda.files import HUB_PREFIX

CARD_NAME = "README.md"


class HubError(KdaError):
    """The checkpoint cannot be uploaded (no credentials, no network, a bad repository id)."""


def check_repo(repo: str, argument: str = "repo") -> str:
    """`repo` if it is a repository id, OWNER/NAME; else a HubError naming the `argument` it came from."""
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name or repo.startswith(HUB_PREFIX):
        raise HubError(f"`{argument}` {repo!r} must be OWNER/NAME, e.g. my-user/kda-ucf-cls")
    return repo


def metrics_rows(metrics: dict) -> list[str]:
    rows = []
    for split in ("validation", "test"):
        m = metrics.get(split)
        if m:
            rows.append(
                f"| {split} | {m['seen']:.2f} | {m['unseen']:.2f} | {m['hm']:.2f} | {m['zsl']:.2f} | {m['beta']:.3g} |"
            )
    return rows


def model_card(config: dict, repo: str) -> str:
    """README.md for a checkpoint, from its config.json (a dict) and the repository id it will live at."""
    prov = config.get("provenance", {})
    features = config.get("features", {})
    classes = config.get("classes", [])
    seen = sum(1 for c in classes if c.get("seen"))
    dataset = prov.get("dataset", "unknown")
    setting = features.get("setting", "unknown")
    train = prov.get("train", {})
    preset = prov.get("preset") or train.get("preset", "paper")
    protocol = prov.get("protocol", train.get("protocol", "paper"))
    selection = (
        "epoch and beta selected on the **test** set (the released code's protocol; optimistic)"
        if protocol == "released"
        else "epoch and beta selected on validation, stage-2 model evaluated once on test"
    )
    source = prov.get("features", {}).get("source", "benchmark features")
    lines = [
        "---",
        "library_name: kda",
        "pipeline_tag: video-classification",
        "tags: [kda, audio-visual, zero-shot, gzsl, video-classification]",
        "---",
        "",
        f"# KDA checkpoint: {dataset}, {setting} features",
        "",
        "Knowledge-augmented audio-visual zero-shot video classification (KDA, Chen et al. 2023) as implemented by "
        "KDA Studio. The network maps a video's audio and visual features into the space of class knowledge "
        "embeddings (LLM-written descriptions encoded by a text encoder) and predicts the nearest class, seen "
        "or unseen in training.",
        "",
        "| | |",
        "|---|---|",
        f"| dataset | {dataset} ({len(classes)} classes: {seen} seen, {len(classes) - seen} unseen) |",
        f"| feature setting | `{setting}` (audio {features.get('audio_dim')}-d, visual {features.get('visual_dim')}-d; "
        f"features: {source}; extractor weights: {features.get('weights', 'pretrained')}) |",
        f"| text encoder | `{config.get('text_encoder', 'unknown')}` |",
        f"| preset | `{preset}` |",
        f"| protocol | `{protocol}`: {selection} |",
        f"| beta (calibrated stacking) | {float(config.get('beta', 0.0)):.4g} |",
        f"| created | {prov.get('created', 'unknown')} with kda {prov.get('kda_version', 'unknown')} |",
        "",
    ]
    rows = metrics_rows(config.get("metrics", {}))
    if rows:
        best = config["metrics"].get("best_epoch")
        lines += [
            f"## Metrics (percent, class-averaged{f'; best epoch {best}' if best else ''})",
            "",
            "| split | S | U | HM | ZSL | beta |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    lines += [
        "## Use it",
        "",
        "In KDA Studio's app:",
        "",
        "```",
        f"python app.py --checkpoint {HUB_PREFIX}{repo}",
        "```",
        "",
        "From Python:",
        "",
        "```python",
        "from kda import Studio",
        "",
        f'studio = Studio.load("{HUB_PREFIX}{repo}")',
        'print(studio.classify("video.mp4").gzsl[0].name)',
        "```",
        "",
        "## Provenance",
        "",
        "```json",
        json.dumps(prov, indent=1, ensure_ascii=False),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_card(folder: str | Path, repo: str) -> Path:
    """Write README.md (the model card) into a checkpoint folder."""
    folder = Path(folder)
    path = folder / CARD_NAME
    path.write_text(model_card(read_config(folder), check_repo(repo)))
    return path


@dataclass(frozen=True)
class Pushed:
    """What an upload made: the repository, its page and the commit that holds the upload."""

    repo: str
    url: str
    revision: str  # the commit id

    @property
    def pinned_id(self) -> str:
        """The id that loads exactly this upload, whatever is committed to the repository later."""
        return f"{HUB_PREFIX}{self.repo}@{self.revision}"


@contextmanager
def hub_errors(what: str):
    """Any failure talking to the Hub (network, credentials, permissions, a missing repository) as one HubError
    line that says what failed and how to fix it: the client's own messages span several lines."""
    try:
        yield
    except HubError:
        raise
    except Exception as e:
        detail = " ".join(str(e).split())
        raise HubError(
            f"cannot {what} ({type(e).__name__}: {detail}); log in with `hf auth login` or set HF_TOKEN, "
            "and check the network"
        ) from e


def hub_api(token: str | None = None):
    """The Hub client, at HF_ENDPOINT when set (a mirror, or the tests' loopback Hub)."""
    from huggingface_hub import HfApi

    return HfApi(token=token)


def push_checkpoint(folder: str | Path, repo: str, *, token: str | None = None, private: bool = False) -> Pushed:
    """Write the card and upload the checkpoint folder to `repo` (created if needed) in one commit."""
    write_card(folder, repo)
    api = hub_api(token)
    with hub_errors(f"upload {folder} to {repo}"):
        api.create_repo(repo, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message="Upload KDA checkpoint")
    return Pushed(repo, f"{api.endpoint}/{repo}", commit.oid)
