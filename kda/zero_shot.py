"""A training-free scorer beside KDA: CLIP's own zero-shot recipe on a video's frames and each class's knowledge.

    video  frames spread evenly in time (the `clip` setting's frames) -> CLIP image embeddings, each unit
           length -> their mean, made unit length
    class  the CLIP text embeddings (unit) of its name and its visual description -> their mean, made unit
           length: open_clip's zero-shot classifier, with the class's texts as its templates
    score  logit_scale * cosine, softmax over the classes

It needs no training and no checkpoint features, so with OpenAI's ViT-B/32 weights (reachable wherever the Hub
is) it gives real predictions from day one; an edit of a class's visual description moves its score at once.
Offline it runs the same architecture on seeded random weights, and says so, as the extractor does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kda.errors import KdaError
from kda.knowledge.encoders import DEFAULT_TEXT_ENCODER, ClipTextEncoder, build_model, build_tokenizer, parse_spec
from kda.knowledge.store import Knowledge

OFFLINE_SEED = 0
PRETRAINED_SPEC = DEFAULT_TEXT_ENCODER  # ViT-B-32-quickgelu@openai: the image and text towers of one CLIP
OFFLINE_SPEC = f"ViT-B-32-quickgelu@random:{OFFLINE_SEED}"
WEIGHTS = ("pretrained", "offline")
FRAMES = 8  # frames per video: the `clip` setting's default
CACHE_TEXTS = 4096  # text vectors kept (every visitor's texts pass through one scorer)
WHAT = "descriptions alone, no training (CLIP zero-shot on the name and visual description)"


@dataclass(frozen=True)
class ZeroShotScores:
    """One video against every class: `probabilities` (C,) sum to 1, `cosines` (C,), in the classes' order."""

    class_ids: list[str]
    names: list[str]
    seen: np.ndarray  # (C,) bool
    cosines: np.ndarray  # (C,)
    probabilities: np.ndarray  # (C,)
    video: np.ndarray  # (E,) the video's unit vector: scoring again after an edit needs no frames
    offline: bool

    def top(self, k: int) -> list[int]:
        return [int(i) for i in np.argsort(-self.probabilities, kind="stable")[:k]]

    def to_json(self, top_k: int = 5) -> dict:
        return {
            "what": WHAT,
            "offline": self.offline,
            "top": [
                {
                    "class_id": self.class_ids[i],
                    "name": self.names[i],
                    "seen": bool(self.seen[i]),
                    "probability": float(self.probabilities[i]),
                    "cosine": float(self.cosines[i]),
                }
                for i in self.top(top_k)
            ],
        }


def class_texts(knowledge: Knowledge, class_id: str) -> list[str]:
    """What CLIP reads of a class: its name and, when it has one, its visual description."""
    entry = knowledge.get(class_id)
    visual = entry.aspect("visual")
    return [entry.name] + ([visual.text] if visual is not None and visual.text.strip() else [])


def unit(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class ZeroShotScorer:
    """Both towers of one CLIP model. Thread-safe: the text-vector cache is the only shared state."""

    def __init__(self, model, tokenizer, preprocess, spec: str):
        from kda.media.clip_frames import ClipImageEncoder

        parsed = parse_spec(spec)
        self.image = ClipImageEncoder(model.visual.eval(), preprocess)
        self.text = ClipTextEncoder(parsed, model.eval(), tokenizer)
        self.logit_scale = float(model.logit_scale.detach().exp())
        self.offline = parsed.kind == "random"
        self.spec = parsed.id
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    @classmethod
    def load(cls, weights: str = "pretrained") -> ZeroShotScorer:
        """OpenAI's ViT-B/32 (downloaded from the Hub on first use, then cached) or its seeded random twin."""
        from open_clip.transform import PreprocessCfg, image_transform_v2

        if weights not in WEIGHTS:
            raise KdaError(f"zero-shot weights {weights!r}: choose one of {', '.join(WEIGHTS)}")
        spec = parse_spec(PRETRAINED_SPEC if weights == "pretrained" else OFFLINE_SPEC)
        model = build_model(spec, None)  # raises TextEncoderError, with what to do, when weights are not here
        preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
        return cls(model, build_tokenizer(spec), preprocess, spec.id)

    @property
    def source(self) -> str:
        if self.offline:
            return f"CLIP {self.spec} (seeded random weights: offline, these scores mean nothing)"
        return f"CLIP {self.spec}"

    def seed(self, vectors: dict[str, np.ndarray]) -> None:
        """Text vectors already made by this very text tower (a checkpoint whose knowledge was encoded with the
        same CLIP): they are not encoded again."""
        with self.lock:
            for text, vector in vectors.items():
                self.remember(text, unit(np.asarray(vector, np.float32)))

    def remember(self, text: str, vector: np.ndarray) -> None:
        self.cache[text] = vector
        self.cache.move_to_end(text)
        while len(self.cache) > CACHE_TEXTS:
            self.cache.popitem(last=False)

    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(n, E) unit vectors; only texts not met before are encoded (outside the lock: visitors never wait on
        each other's encoding)."""
        with self.lock:
            known = {t: self.cache[t] for t in texts if t in self.cache}
        new = list(dict.fromkeys(t for t in texts if t not in known))
        if new:
            vectors = self.text.encode(new)
            with self.lock:
                for text, vector in zip(new, vectors, strict=True):
                    self.remember(text, vector)
            known.update(zip(new, vectors, strict=True))
        return np.stack([known[t] for t in texts])

    def class_vectors(self, knowledge: Knowledge, class_ids: Sequence[str]) -> np.ndarray:
        """(C, E): the unit mean of each class's unit text vectors."""
        texts = [class_texts(knowledge, c) for c in class_ids]
        flat = self.text_vectors([t for group in texts for t in group])
        bounds = np.cumsum([0] + [len(group) for group in texts])
        return unit(np.stack([flat[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]))

    def video_vector(self, frames: np.ndarray) -> np.ndarray:
        """(n, H, W, 3) uint8 RGB frames -> (E,): the unit mean of their unit image embeddings."""
        from kda.media.clip_frames import embed_frames

        return unit(embed_frames(self.image, frames).mean(axis=0))

    def score(self, video: np.ndarray, knowledge: Knowledge, class_ids: Sequence[str], seen) -> ZeroShotScores:
        """The video's unit vector (E,) against the classes as `knowledge` describes them now."""
        cosines = self.class_vectors(knowledge, class_ids) @ video  # (C,)
        logits = self.logit_scale * cosines
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        names = [knowledge.get(c).name for c in class_ids]
        return ZeroShotScores(
            list(class_ids), names, np.asarray(seen, bool), cosines, probabilities, video, self.offline
        )
