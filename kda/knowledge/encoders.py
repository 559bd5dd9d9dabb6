"""Text encoders that turn knowledge texts into vectors: the CLIP text tower through open_clip.

An encoder is named by a spec, `ARCH@WEIGHTS` or `hf-hub:ORG/REPO`:

    ViT-B-32-quickgelu@openai             open_clip architecture + pretrained tag (downloaded or cached)
    ViT-B-32-quickgelu@file:/path/w.bin   the same architecture, weights from a local open_clip file
    ViT-B-32-quickgelu@random:0           the same architecture, weights drawn with seed 0 (offline)
    kda-tiny-text@random:0                a small config of the same CLIP text transformer (fast tests)
    hf-hub:timm/vit_base_patch32_clip_224.openai    config and weights from the Hugging Face Hub

The encoder's `id` is its spec made exact (a file's path absolute and its SHA-256 prefix appended), so
`load_text_encoder(encoder.id)` rebuilds the same encoder; checkpoints record it. Random weights are a
function of the seed for a given torch/open_clip version; their vectors carry no meaning and the encoder
says so (`offline`). Real weights that cannot be had are an error naming them and how to fetch them,
never a silent fallback to random ones.

The paper's encoder is CLIP ViT-B/32 with OpenAI's weights, which were trained with QuickGELU
activations: hence `ViT-B-32-quickgelu` (the plain `ViT-B-32` config would use GELU with those weights).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kda.errors import KdaError

DEFAULT_TEXT_ENCODER = "ViT-B-32-quickgelu@openai"
OFFLINE_TEXT_ENCODER = "ViT-B-32-quickgelu@random:0"
TINY_TEXT_ENCODER = "kda-tiny-text@random:0"
HF_HUB = "hf-hub:"
PAD_TOKEN = 0  # open_clip's CLIP tokenizer pads with 0
BATCH_SIZE = 64  # texts per forward pass

# kda's own configs of open_clip's CLIP architecture (open_clip config format). The vision tower is
# required by the CLIP class but never used; it is kept minimal and dropped after building.
CONFIGS = {
    "kda-tiny-text": {
        "embed_dim": 512,  # same knowledge space as ViT-B-32
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
    },
}


class TextEncoderError(KdaError):
    """A text encoder spec is malformed, or its weights cannot be loaded."""


@dataclass(frozen=True)
class EncoderSpec:
    arch: str  # open_clip model name, a CONFIGS name, or "hf-hub:org/repo"
    kind: str  # "tag", "file", "random" or "hub"
    value: str = ""  # tag name, file path, or seed
    sha256: str = ""  # for files: expected digest prefix

    @property
    def id(self) -> str:
        if self.kind == "hub":
            return self.arch
        if self.kind == "file":
            return f"{self.arch}@file:{self.value}" + (f"#sha256:{self.sha256}" if self.sha256 else "")
        if self.kind == "random":
            return f"{self.arch}@random:{self.value}"
        return f"{self.arch}@{self.value}"


def parse_spec(spec: str) -> EncoderSpec:
    """Parse `ARCH@WEIGHTS` / `hf-hub:ORG/REPO` (grammar in the module docstring)."""
    spec = spec.strip()
    if spec.startswith(HF_HUB):
        if not re.fullmatch(r"hf-hub:[\w.-]+/[\w.-]+", spec):
            raise TextEncoderError(f"text encoder {spec!r}: expected hf-hub:ORG/REPO")
        return EncoderSpec(spec, "hub")
    arch, sep, weights = spec.partition("@")
    if not sep or not arch or not weights:
        raise TextEncoderError(
            f"text encoder {spec!r}: expected ARCH@WEIGHTS such as {DEFAULT_TEXT_ENCODER!r}, "
            f"{OFFLINE_TEXT_ENCODER!r} or ARCH@file:/path/weights.bin, or hf-hub:ORG/REPO"
        )
    if weights.startswith("random:"):
        seed = weights.removeprefix("random:")
        if not seed.isdigit():
            raise TextEncoderError(f"text encoder {spec!r}: the seed after 'random:' must be a non-negative integer")
        return EncoderSpec(arch, "random", str(int(seed)))
    if weights.startswith("file:"):
        path, _, digest = weights.removeprefix("file:").partition("#sha256:")
        return EncoderSpec(arch, "file", str(Path(path).expanduser().resolve()), digest.lower())
    return EncoderSpec(arch, "tag", weights)


class TextEncoder:
    """A loaded text encoder: `encode(texts) -> (N, dim)` unit-length float32 vectors."""

    def __init__(self, spec: EncoderSpec, model, tokenizer):
        self.spec = spec
        self.id = spec.id
        self.offline = spec.kind == "random"  # True: random weights, vectors mean nothing
        self.model = model
        self.tokenizer = tokenizer
        self.calls = 0  # encode() calls and texts encoded, for tests and benchmarks
        self.texts_encoded = 0
        self.dim = int(self.forward(["a"]).shape[1])

    def __repr__(self) -> str:
        return f"TextEncoder({self.id!r}, dim={self.dim}{', offline random weights' if self.offline else ''})"

    @property
    def description(self) -> str:
        if self.offline:
            return f"{self.spec.arch} text encoder with random weights (seed {self.spec.value}): offline, its embeddings carry no meaning"
        return f"{self.id} text encoder"

    def fingerprint(self) -> str:
        """A digest of a few weights: tells a persisted cache whether it was made by these very weights."""
        digest = hashlib.sha256()
        for name, tensor in list(self.model.state_dict().items())[-4:]:
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32, each row L2-normalised (as CLIP compares texts)."""
        self.calls += 1
        self.texts_encoded += len(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self.forward(list(texts))

    def forward(self, texts: list[str]) -> np.ndarray:
        import torch

        # Sorting by length lets each batch be trimmed to its longest text (see `encode_tokens`).
        tokens = self.tokenizer(texts)  # (N, context_length)
        lengths = (tokens != PAD_TOKEN).sum(1)
        order = torch.argsort(lengths, descending=True)
        with torch.inference_mode():
            chunks = [
                encode_tokens(self.model, tokens[order[i : i + BATCH_SIZE]]) for i in range(0, len(texts), BATCH_SIZE)
            ]
            out = torch.cat(chunks)[torch.argsort(order)]  # back to input order
            out = torch.nn.functional.normalize(out.float(), dim=-1)
        return out.numpy().astype(np.float32)


def encode_tokens(model, tokens):
    """CLIP text features of `tokens` (B, L). For a causal CLIP text tower that pools at the end-of-text
    token, positions after the longest text cannot affect any output, so the padding is cut off first:
    the same result as `model.encode_text` at a fraction of the cost (tested against it)."""
    import open_clip
    import torch
    from open_clip.transformer import text_global_pool

    if not (
        isinstance(model, open_clip.CLIP) and model.attn_mask is not None and model.text_pool_type in ("argmax", "eos")
    ):
        return model.encode_text(tokens)
    length = int((tokens != PAD_TOKEN).sum(1).max())
    tokens = tokens[:, :length]  # (B, L')
    x = model.token_embedding(tokens) + model.positional_embedding[:length]  # (B, L', width)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(
        x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None)
    )  # (B, width)
    if isinstance(model.text_projection, torch.nn.Linear):
        return model.text_projection(x)
    return x @ model.text_projection  # (B, embed_dim)


# ---------------------------------------------------------------------------------------------
# Loading


def load_text_encoder(spec: str = DEFAULT_TEXT_ENCODER, cache_dir: str | None = None) -> TextEncoder:
    """Build the encoder named by `spec` (grammar in the module docstring)."""
    parsed = parse_spec(spec)
    check_arch(parsed)
    if parsed.kind == "file":
        parsed = check_file(parsed)
    model = build_model(parsed, cache_dir)
    model.eval()
    if hasattr(model, "visual"):
        del model.visual  # only the text tower is used; frees ~350 MB for ViT-B-32
    return TextEncoder(parsed, model, build_tokenizer(parsed))


def check_arch(spec: EncoderSpec) -> None:
    import open_clip

    if spec.kind == "hub" or spec.arch in CONFIGS or spec.arch in open_clip.list_models():
        return
    import difflib

    choices = [*CONFIGS, *open_clip.list_models()]
    close = difflib.get_close_matches(spec.arch, choices, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise TextEncoderError(
        f"unknown text encoder architecture {spec.arch!r}{hint} (kda configs: {', '.join(CONFIGS)}; others: open_clip.list_models())"
    )


def check_file(spec: EncoderSpec) -> EncoderSpec:
    path = Path(spec.value)
    if not path.is_file():
        raise TextEncoderError(f"text encoder weights file {path} does not exist")
    digest = sha256_of(path)
    if spec.sha256 and not digest.startswith(spec.sha256):
        raise TextEncoderError(
            f"{path} has SHA-256 {digest[:16]}, not {spec.sha256} as {spec.id!r} expects: the file changed; use the original weights"
        )
    return EncoderSpec(spec.arch, "file", spec.value, digest[:16])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def build_model(spec: EncoderSpec, cache_dir: str | None):
    import open_clip
    import torch

    if spec.kind == "random":
        with torch.random.fork_rng(devices=[]), quiet_root_logger():  # seeded locally; open_clip's
            torch.manual_seed(int(spec.value))  # "initialized randomly" warning is what we asked for
            if spec.arch in CONFIGS:
                return open_clip.CLIP(**CONFIGS[spec.arch])
            return open_clip.create_model(spec.arch, pretrained=None, device="cpu")
    try:
        if spec.arch in CONFIGS:
            if spec.kind != "file":
                raise TextEncoderError(
                    f"{spec.arch!r} is a kda config without published weights; use {spec.arch}@random:SEED or @file:PATH"
                )
            model = open_clip.CLIP(**CONFIGS[spec.arch])
            open_clip.load_checkpoint(model, spec.value, strict=True, weights_only=True)
            return model
        if spec.kind == "hub":
            return open_clip.create_model(spec.arch, device="cpu", cache_dir=cache_dir, require_pretrained=True)
        # `pretrained` is a tag (downloaded, or read from the cache) or a file path.
        return open_clip.create_model(
            spec.arch, pretrained=spec.value, device="cpu", cache_dir=cache_dir, require_pretrained=True
        )
    except TextEncoderError:
        raise
    except Exception as e:  # download, cache or checkpoint errors all mean: these weights are not here
        raise weights_error(spec, e) from e


@contextlib.contextmanager
def quiet_root_logger():
    """open_clip logs through the root logger; silence its warnings for the duration (restored after)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def weights_error(spec: EncoderSpec, cause: Exception) -> TextEncoderError:
    import open_clip

    reason = " ".join(str(cause).split())[:300]
    if spec.kind == "file":
        return TextEncoderError(f"cannot load text encoder weights {spec.value} into {spec.arch}: {reason}")
    if spec.kind == "tag" and spec.value not in open_clip.list_pretrained_tags_by_model(spec.arch):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(spec.arch)) or "none"
        return TextEncoderError(f"{spec.arch} has no pretrained weights {spec.value!r}; known tags: {tags}")
    fetch = (
        f"open_clip.create_model('{spec.arch}', pretrained='{spec.value}')"
        if spec.kind == "tag"
        else f"open_clip.create_model('{spec.arch}')"
    )
    return TextEncoderError(
        f"the weights of text encoder {spec.id} are not in the local cache and could not be downloaded ({reason}). "
        f'Fetch them once on a machine with internet access: python -c "import open_clip; {fetch}" '
        f"(cached under ~/.cache/huggingface; copy that folder here), or load a local file with "
        f"{spec.arch if spec.kind == 'tag' else 'ARCH'}@file:/path/open_clip_pytorch_model.bin; "
        f"{OFFLINE_TEXT_ENCODER} runs offline on random weights (meaningless embeddings)"
    )


def build_tokenizer(spec: EncoderSpec):
    import open_clip

    if spec.arch in CONFIGS:
        return open_clip.get_tokenizer("ViT-B-32")  # the same CLIP BPE vocabulary
    return open_clip.get_tokenizer(spec.arch)
