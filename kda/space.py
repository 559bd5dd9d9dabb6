"""A Hugging Face Space that runs KDA Studio on a checkpoint from the Hub, made or updated in one commit.

The Space holds what the app needs and nothing else: app.py, demo/ and kda/ (with the library's package data),
requirements.txt, packages.txt, the example videos (assets/examples) and a README.md made of this project's front
matter (the Space's configuration) and a short body naming the checkpoint. No tests, benches, checkpoints or
caches. The checkpoint is pinned to a commit and handed to the app as the Space variable KDA_CHECKPOINT, so the
Space keeps showing that checkpoint until `kda space` is run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kda.checkpoint import FILES as CHECKPOINT_FILES
from kda.files import HUB_PREFIX, split_hub_id
from kda.hub import HubError, check_repo, hub_api, hub_errors

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the checkout kda/ lies in: app.py, demo/, assets/ beside it
TOP_FILES = ("app.py", "requirements.txt", "packages.txt")
FOLDERS = ("kda", "demo", "assets/examples")
KEPT_REMOTE = (".gitattributes",)  # the Hub's own file in every repository: an update leaves it
VARIABLE = "KDA_CHECKPOINT"  # read by app.py
SDK = "gradio"


@dataclass(frozen=True)
class MadeSpace:
    space: str
    url: str
    revision: str  # the Space's commit
    checkpoint: str  # the pinned id the app loads: hf-hub:OWNER/NAME@COMMIT
    files: tuple[str, ...]


def space_files(root: Path = SOURCE_ROOT) -> dict[str, Path]:
    """Path in the Space -> local file, for every file the Space holds but its README."""
    if not all((root / name).is_file() for name in TOP_FILES) or not (root / "demo").is_dir():
        raise HubError(
            f"{root} is not a KDA Studio checkout (app.py, demo/, requirements.txt, packages.txt beside kda/); "
            "`kda space` uploads the app from one"
        )
    files = {name: root / name for name in TOP_FILES}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root)
            skipped = any(part.startswith(".") for part in relative.parts)  # .DS_Store, .ipynb_checkpoints
            if path.is_file() and not skipped and path.suffix != ".pyc":  # all __pycache__ holds
                files[relative.as_posix()] = path
    return files


def front_matter(readme: str) -> list[str]:
    """The lines between the `---` fences that open the project's README: the Space's configuration."""
    if not readme.startswith("---\n") or "\n---\n" not in readme[4:]:
        raise HubError("README.md must open with the Space's front matter between --- lines")
    return readme[4 : readme.index("\n---\n", 4)].splitlines()


def space_readme(root: Path, checkpoint: str, endpoint: str) -> str:
    """The Space's README.md: the project's front matter, linked to the checkpoint's model repository, and a
    body that says what runs and how it is pinned."""
    repo, revision = split_hub_id(checkpoint)
    config = front_matter((root / "README.md").read_text(encoding="utf-8"))
    return "\n".join(
        [
            "---",
            *config,
            "models:",
            f"- {repo}",
            "---",
            "",
            "# KDA Studio",
            "",
            "Knowledge-augmented audio-visual zero-shot video classification (KDA, Chen et al. 2023): classify a "
            "video among classes seen and unseen in training, edit the class knowledge and watch the prediction move.",
            "",
            f"This Space runs the checkpoint [{repo}]({endpoint}/{repo}) at commit `{revision}`, given to the app "
            f"by the Space variable `{VARIABLE}={checkpoint}`. It was made by `kda space`; run that again to "
            "update the app or move to another checkpoint.",
            "",
        ]
    )


def pin_checkpoint(api, checkpoint: str) -> str:
    """`hf-hub:OWNER/NAME[@REVISION]` -> `hf-hub:OWNER/NAME@COMMIT`: the commit the revision (default: the head
    of main) names now, after checking that a KDA checkpoint is there."""
    if not checkpoint.startswith(HUB_PREFIX):
        raise HubError(
            f"`checkpoint` {checkpoint!r} must be a Hub id, hf-hub:OWNER/NAME[@REVISION]; upload a local "
            "checkpoint first with `kda push`"
        )
    repo, revision = split_hub_id(checkpoint)
    check_repo(repo, "checkpoint")
    with hub_errors(f"find checkpoint {repo}{f' at {revision}' if revision else ''}"):
        info = api.model_info(repo, revision=revision)
    present = {sibling.rfilename for sibling in info.siblings or []}
    missing = [name for name in CHECKPOINT_FILES[:2] if name not in present]  # config.json, model.safetensors
    if missing:
        raise HubError(f"{repo} at {info.sha} is not a KDA checkpoint: it has no {' or '.join(missing)}")
    return f"{HUB_PREFIX}{repo}@{info.sha}"


def make_space(
    space: str, checkpoint: str, *, root: Path = SOURCE_ROOT, token: str | None = None, private: bool = False
) -> MadeSpace:
    """Create the Gradio Space `space` (or update it), pin `checkpoint` and commit the app's files; files of an
    earlier version that the app no longer has are deleted in the same commit."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    check_repo(space, "space")
    api = hub_api(token)
    files = space_files(root)  # before any request: a wrong checkout fails here, offline
    pinned = pin_checkpoint(api, checkpoint)
    readme = space_readme(root, pinned, api.endpoint).encode()
    with hub_errors(f"create or update the Space {space}"):
        api.create_repo(space, repo_type="space", space_sdk=SDK, private=private, exist_ok=True)
        # The variable first: a commit restarts the Space, which must find its checkpoint.
        api.add_space_variable(space, VARIABLE, pinned, description="the checkpoint app.py loads, pinned to a commit")
        stale = set(api.list_repo_files(space, repo_type="space")) - set(files) - {"README.md", *KEPT_REMOTE}
        operations = [CommitOperationAdd(path, str(local)) for path, local in files.items()]
        operations += [CommitOperationAdd("README.md", readme)]
        operations += [CommitOperationDelete(path) for path in sorted(stale)]
        commit = api.create_commit(space, operations, commit_message=f"KDA Studio on {pinned}", repo_type="space")
    return MadeSpace(space, f"{api.endpoint}/spaces/{space}", commit.oid, pinned, tuple(sorted([*files, "README.md"])))
