"""The app's limits and service settings, read once from the environment (defaults suit a small Space)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = "checkpoints/demo-ucf-cls"
EXAMPLES_DIR = ROOT / "assets" / "examples"
VIDEO_TYPES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")
MAX_REQUEST_BYTES = 2 * 2**20  # one API call's JSON (texts, choices, file references); files come by upload

NO_LLM = (
    "No LLM is configured, so descriptions cannot be regenerated (editing by hand still works). "
    "Set OPENAI_API_KEY for OpenAI, or OPENAI_BASE_URL for any OpenAI-compatible server "
    "(a local one needs no key, see docs/LOCAL_LLM.md), optionally KDA_LLM_MODEL, and restart the app."
)


def env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError as e:
        raise SystemExit(f"{name}={raw!r} is not a number (default {default:g})") from e


@dataclass(frozen=True)
class LLMConfig:
    """Where regeneration sends its questions. The key is kept out of repr so that it is never shown."""

    base_url: str | None
    model: str | None
    api_key: str | None = field(default=None, repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.api_key or self.base_url)

    @property
    def describe(self) -> str:
        """One line for the UI, without the key."""
        if not self.configured:
            return NO_LLM
        where = self.base_url or "OpenAI (https://api.openai.com/v1)"
        return f"LLM: {where}, model {self.model or 'the default'}."


@dataclass(frozen=True)
class Settings:
    max_upload_mb: float = 200.0  # bigger uploads are refused by the server before they reach the handler
    max_video_s: float = 600.0  # longer videos are refused with TooLongError (clips are sampled below that)
    concurrency: int = 4  # events run at once per handler; Gradio's default of 1 serialises every visitor
    # Uploads classified at once. One classification already fills two cores (bench_app: two at once give 1.13x
    # the throughput of one), so more at once only slow every edit beside them: one per two cores by default.
    classify_concurrency: int = max(1, (os.cpu_count() or 2) // 2)
    queue_size: int = 64  # waiting events beyond this are turned away with "queue full"
    session_ttl_s: float = 4 * 3600  # the server forgets a visitor this long after their last action (demo.saved_edits)
    cache_s: float = 3600.0  # uploads and exported files leave Gradio's cache this long after they were made
    top_k: int = 5
    # The training-free CLIP scorer's weights: "pretrained" (downloaded from the Hub once) or "offline"; None:
    # pretrained on a Hugging Face Space (it reaches the Hub), else as the checkpoint's extractor.
    zero_shot_weights: str | None = None
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(None, None))

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            max_upload_mb=env_number("KDA_MAX_UPLOAD_MB", cls.max_upload_mb),
            max_video_s=env_number("KDA_MAX_VIDEO_SECONDS", cls.max_video_s),
            concurrency=int(env_number("KDA_CONCURRENCY", cls.concurrency)),
            classify_concurrency=int(env_number("KDA_CLASSIFY_CONCURRENCY", cls.classify_concurrency)),
            queue_size=int(env_number("KDA_QUEUE_SIZE", cls.queue_size)),
            session_ttl_s=env_number("KDA_SESSION_TTL_SECONDS", cls.session_ttl_s),
            zero_shot_weights=zero_shot_weights(),
            cache_s=env_number("KDA_CACHE_SECONDS", cls.cache_s),
            llm=LLMConfig(
                base_url=os.environ.get("OPENAI_BASE_URL") or None,
                model=os.environ.get("KDA_LLM_MODEL") or None,
                api_key=os.environ.get("OPENAI_API_KEY") or None,
            ),
        )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def delete_cache(self) -> tuple[int, int]:
        """Gradio's (how often, how old) in seconds for its cache cleanup: a file lives cache_s, and at most
        ten minutes more, before it is deleted."""
        age = max(1, int(self.cache_s))
        return min(age, 600), age


def zero_shot_weights() -> str | None:
    chosen = os.environ.get("KDA_ZERO_SHOT_WEIGHTS", "").strip()
    if chosen not in ("", "pretrained", "offline"):
        raise SystemExit(f"KDA_ZERO_SHOT_WEIGHTS={chosen!r}: choose pretrained or offline")
    return chosen or ("pretrained" if os.environ.get("SPACE_ID") else None)


def example_videos() -> list[Path]:
    """The bundled example videos (local files, so they never die like URLs do)."""
    if not EXAMPLES_DIR.is_dir():
        return []
    return sorted(p for p in EXAMPLES_DIR.iterdir() if p.suffix.lower() in VIDEO_TYPES)
