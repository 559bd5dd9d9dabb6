"""A loaded checkpoint ready to use: classify videos or features, edit knowledge per session, analyse.

    studio = Studio.load("checkpoints/demo-ucf-cls")      # model, text encoder and extractor, once
    session = studio.new_session()                         # one person's editable knowledge
    prediction = studio.classify("clip.mp4", session)      # top-k under GZSL and ZSL, notes, modalities
    session.edit("ApplyLipstick", ["...", "...", "..."])   # re-encodes only the edited texts
    studio.classify_features(prediction.audio, prediction.visual, session)

The extractor is the one the checkpoint names (feature setting and weights). A checkpoint trained on
synthetic features has no real extractor: it runs on offline (seeded random) weights, and `banner` and every
prediction's notes say that predictions for uploaded videos then mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kda import analysis
from kda.checkpoint import Checkpoint, ReferenceSamples, load_checkpoint
from kda.errors import KdaError
from kda.evaluation import embed_videos
from kda.knowledge.store import ClassKnowledge, Knowledge
from kda.losses import LossConfig
from kda.media.decode import DEFAULT_LIMITS, Limits
from kda.media.extract import DEFAULT_MAX_CLIPS, VideoExtractor
from kda.media.pipeline import DEFAULT_MAX_EXAMPLES, ExtractOptions, NetworkOptions, Progress, VideoFeatures
from kda.model import check_dims
from kda.session import Embedder, KnowledgeSession

NO_AUDIO_NOTE = "no audio track: a visual-only prediction (audio set to its training mean)"
NOT_ENCODED = ("precomputed", "synthetic")  # text-encoder ids of knowledge that came as vectors, not texts
# Offline (random) extractor weights give meaningless features however many clips they see, so they get one
# C3D clip (~1.3 s on 2 cores) instead of DEFAULT_MAX_CLIPS (~20 s): the same code path, a fast demo.
OFFLINE_MAX_CLIPS = 1


@dataclass(frozen=True)
class ClassScore:
    class_id: str
    name: str
    seen: bool
    distance: float  # ||rho_av - t_c||
    score: float  # softmax of -distance / tau (seen classes calibrated by +beta in GZSL), in [0, 1]


@dataclass
class ModalityContribution:
    """What each modality did for this prediction, measured by taking it away: the prediction is recomputed
    with the audio input replaced by its training mean (what the network sees for an average sound, i.e. a
    visual-only outcome), and again with the visual input replaced likewise (audio-only). `*_shift` is how
    each class's distance moved when that modality was taken away; the modality whose removal pushes the
    predicted class further away is the one that drove the decision ("both" when the two are within 25 %)."""

    without_audio: ClassScore  # top-1, visual only
    without_visual: ClassScore  # top-1, audio only
    audio_shift: np.ndarray  # (C,) distance without audio - distance with it
    visual_shift: np.ndarray  # (C,)
    driver: str  # "audio", "visual" or "both"
    summary: str


@dataclass
class Prediction:
    scores: list[ClassScore]  # every candidate, in the session's class order
    gzsl: list[ClassScore]  # top-k among all classes, seen distances + beta (calibrated stacking)
    zsl: list[ClassScore]  # top-k among unseen classes only
    beta: float
    rho_av: np.ndarray  # (E,) fused embedding
    audio: np.ndarray  # (Da,) the audio input used (the training mean when the video had none)
    visual: np.ndarray  # (Dv,)
    has_audio: bool
    modality: ModalityContribution
    source: str
    notes: list[str] = field(default_factory=list)

    def top(self, zsl: bool = False) -> ClassScore:
        return (self.zsl if zsl else self.gzsl)[0]


class Studio:
    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        limits: Limits = DEFAULT_LIMITS,
        max_clips: int | None = None,  # C3D clips per video; None: DEFAULT_MAX_CLIPS, or OFFLINE_MAX_CLIPS offline
        max_examples: int = DEFAULT_MAX_EXAMPLES,
        text_encoder=None,
        device="cpu",  # where the model and the extractor's networks run (kda.device.resolve_device)
    ):
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.model = checkpoint.model.to(self.device).eval()
        # Synthetic features ('none') have no extractor of their own: offline weights keep the path runnable.
        self.weights = "pretrained" if checkpoint.feature_weights == "pretrained" else "offline"
        self.max_clips = max_clips or (OFFLINE_MAX_CLIPS if self.offline else DEFAULT_MAX_CLIPS)
        # Its networks are built by the first extraction (a checkpoint without an extractor still loads).
        self.extractor = VideoExtractor(
            ExtractOptions(checkpoint.setting, self.max_clips, max_examples, limits=limits),
            NetworkOptions(self.weights, self.device),
        )
        self.loss = LossConfig(**{**LossConfig().to_dict(), **checkpoint.provenance.get("loss", {})})
        self.embedder, self.why_not_editable = self.load_embedder(text_encoder)
        self.base = self.new_session()  # read-only view for callers that pass no session
        self.sample_embeddings: np.ndarray | None = None  # rho_av of the reference sample, made once

    @classmethod
    def load(cls, location: str | Path, **kwargs) -> Studio:
        """From a checkpoint folder or `hf-hub:owner/name` id; keyword arguments as for `Studio`."""
        return cls(load_checkpoint(location), **kwargs)

    def load_embedder(self, text_encoder) -> tuple[Embedder | None, str]:
        """The checkpoint's text encoder (once), or why its knowledge cannot be re-encoded."""
        ckpt = self.checkpoint
        if ckpt.knowledge_file is None:
            return None, "the checkpoint stores knowledge vectors without their texts"
        if ckpt.text_encoder in NOT_ENCODED:
            return None, f"its knowledge vectors are {ckpt.text_encoder}, not encoded from texts"
        if text_encoder is None:
            from kda.knowledge.encoders import load_text_encoder

            try:
                text_encoder = load_text_encoder(ckpt.text_encoder)
            except KdaError as e:
                return None, str(e)
        embedder = Embedder(text_encoder)
        stored = ckpt.text_vectors
        if stored is not None and (stored.encoder, stored.fingerprint) == (text_encoder.id, text_encoder.fingerprint()):
            embedder.cache.vectors.update({(stored.encoder, t): v for t, v in stored.vectors.items()})
        return embedder, ""

    # -- what is real ---------------------------------------------------------------------------------

    @property
    def offline(self) -> bool:
        """True when uploaded videos go through offline (random) extractor weights: their predictions mean nothing."""
        return self.weights == "offline"

    @property
    def samples(self) -> ReferenceSamples | None:
        return self.checkpoint.samples

    @property
    def banner(self) -> str:
        """What is real and what is not, in a few sentences (empty when everything is real)."""
        if not self.offline:
            return ""
        ckpt = self.checkpoint
        features = "synthetic" if ckpt.feature_weights == "none" else "offline (random-weight)"
        knowledge = "real" if ckpt.text_encoder not in NOT_ENCODED else ckpt.text_encoder
        return (
            f"This checkpoint was trained on {features} features; its {ckpt.setting} extractor runs on offline "
            f"random weights, so predictions for uploaded videos mean nothing. The class knowledge ({knowledge}, "
            f"encoded with {ckpt.text_encoder}) and everything computed from it alone (similarity and margin "
            "heatmaps, the knowledge map, the effect of edits) are meaningful. For a real checkpoint, train on the "
            "public AVCA features (README: 'The real benchmarks') and start the app with --checkpoint."
        )

    def new_session(self) -> KnowledgeSession:
        ckpt = self.checkpoint
        knowledge = ckpt.knowledge_file or Knowledge(
            "checkpoint", {c.id: ClassKnowledge(c.name) for c in ckpt.classes}, {"method": "class names only"}
        )
        return KnowledgeSession(knowledge, ckpt.knowledge, ckpt.seen_mask, self.embedder, self.why_not_editable)

    # -- classification -------------------------------------------------------------------------------

    def extract(self, path: str | Path, progress: Progress | None = None) -> VideoFeatures:
        """The checkpoint's features of one video, in memory. Any number of calls may run at once: they share
        the extractor's networks, built once by the first."""
        return self.extractor.extract(path, progress)

    def classify(
        self,
        path: str | Path,
        session: KnowledgeSession | None = None,
        top_k: int = 5,
        progress: Progress | None = None,
    ) -> Prediction:
        """Extract a video's features and classify them. A video without (usable) audio is classified on its
        visual features alone, said in the notes; a file without a video track raises NoVideoTrackError."""
        features = self.extract(path, progress)
        # The extractor's own offline and no-audio notes are said again, for the prediction, below.
        notes = [n for n in features.notes if not n.endswith("features carry no meaning")]
        notes = [n for n in notes if features.has_audio or not n.startswith("no audio track")]
        if features.offline:
            notes.append(
                f"{self.checkpoint.setting} extractor on offline random weights: this prediction means nothing"
            )
        return self.classify_features(features.audio, features.visual, session, top_k, notes, Path(path).name)

    def classify_sample(self, index: int, session: KnowledgeSession | None = None, top_k: int = 5) -> Prediction:
        samples = self.require_samples()
        if not 0 <= index < len(samples):
            raise KdaError(f"no reference sample {index}; the checkpoint has {len(samples)} (0 to {len(samples) - 1})")
        truth = self.checkpoint.classes[samples.labels[index]]
        source = (
            f"reference sample {samples.urls[index]} (true class {truth.name}, {'seen' if truth.seen else 'unseen'})"
        )
        return self.classify_features(samples.audio[index], samples.visual[index], session, top_k, [], source)

    def classify_features(
        self,
        audio: np.ndarray | None,
        visual: np.ndarray,
        session: KnowledgeSession | None = None,
        top_k: int = 5,
        notes: list[str] | tuple = (),
        source: str = "features",
    ) -> Prediction:
        """Classify one video's features (Da,) or None, (Dv,) against the session's classes."""
        session = session or self.base
        notes = list(notes)
        audio_mean = self.model.audio_norm.mean.cpu().numpy()
        has_audio = audio is not None
        if not has_audio:
            audio = audio_mean
            notes.append(NO_AUDIO_NOTE)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        visual = np.asarray(visual, dtype=np.float32).reshape(-1)
        check_dims(self.model.cfg, len(audio), len(visual), source=source)
        visual_mean = self.model.visual_norm.mean.cpu().numpy()
        batch_a = np.stack([audio, audio_mean, audio])  # full, without audio, without visual
        batch_v = np.stack([visual, visual, visual_mean])
        rho = embed_videos(self.model, batch_a, batch_v)  # (3, E)
        distances = torch.cdist(rho, torch.from_numpy(session.matrix)).numpy().astype(np.float64)  # (3, C)
        return self.prediction(session, distances, rho[0].numpy(), audio, visual, has_audio, notes, source, top_k)

    def prediction(self, session, distances, rho, audio, visual, has_audio, notes, source, top_k) -> Prediction:
        seen, beta, tau = session.seen, self.checkpoint.beta, self.loss.tau
        calibrated = distances + beta * seen  # (3, C)
        gzsl_prob = softmax(-calibrated[0] / tau)
        zsl_prob = np.zeros_like(gzsl_prob)
        if (~seen).any():
            zsl_prob[~seen] = softmax(-distances[0, ~seen] / tau)

        def score(i: int, prob: np.ndarray) -> ClassScore:
            return ClassScore(
                session.class_ids[i], session.names[i], bool(seen[i]), float(distances[0, i]), float(prob[i])
            )

        order = np.argsort(calibrated[0], kind="stable")
        unseen_order = [i for i in np.argsort(distances[0], kind="stable") if not seen[i]]
        modality = modality_contribution(distances, calibrated, has_audio, lambda i: score(i, gzsl_prob))
        return Prediction(
            scores=[score(i, gzsl_prob) for i in range(len(seen))],
            gzsl=[score(i, gzsl_prob) for i in order[:top_k]],
            zsl=[score(i, zsl_prob) for i in unseen_order[:top_k]],
            beta=beta,
            rho_av=rho,
            audio=audio,
            visual=visual,
            has_audio=has_audio,
            modality=modality,
            source=source,
            notes=notes,
        )

    def rescore(self, prediction: Prediction, session: KnowledgeSession | None = None, top_k: int = 5) -> Prediction:
        """The same video against the session's knowledge as it stands now: one forward pass on the features
        the prediction kept, no new extraction."""
        audio = prediction.audio if prediction.has_audio else None
        notes = [n for n in prediction.notes if n != NO_AUDIO_NOTE]
        return self.classify_features(audio, prediction.visual, session, top_k, notes, prediction.source)

    def require_samples(self) -> ReferenceSamples:
        if self.samples is None or not len(self.samples):
            raise KdaError("this checkpoint has no reference sample (train with samples_per_class > 0)")
        return self.samples

    def sample_choices(self) -> list[tuple[str, int]]:
        """(label, index) of every reference sample, for pickers."""
        samples = self.require_samples()
        classes = self.checkpoint.classes
        count: dict[int, int] = {}
        out = []
        for i, label in enumerate(samples.labels):
            count[label] = count.get(label, 0) + 1
            c = classes[label]
            out.append((f"{c.name} ({'seen' if c.seen else 'unseen'}) #{count[label]}", i))
        return out

    # -- analysis ---------------------------------------------------------------------------------------

    def similarity(self, session=None, order: str = "cluster", classes: list[str] | None = None):
        """Class x class cosine similarity of the session's knowledge t_c (`analysis.Heatmap`)."""
        session = session or self.base
        return analysis.similarity_heatmap(
            session.matrix, session.class_ids, session.names, session.seen, order=order, classes=classes
        )

    def margins(self, session=None, order: str = "cluster", classes: list[str] | None = None):
        """The adaptive margins m(y, c) = alpha cos(t_y, t_c) + m0 the loss adds (`analysis.Heatmap`)."""
        session = session or self.base
        return analysis.margin_heatmap(
            session.matrix,
            session.class_ids,
            session.names,
            session.seen,
            alpha=self.loss.alpha,
            m0=self.loss.m0,
            order=order,
            classes=classes,
        )

    def embedding_maps(self, session=None, method: str = "tsne", query: Prediction | None = None, seed: int = 0):
        """2-D maps of the reference sample's audio, visual and fused rho_av, and of the knowledge t_c, with the
        query video placed in them; keyed "audio", "visual", "knowledge", "fused" (`analysis.EmbeddingMap`)."""
        session = session or self.base
        samples = self.require_samples()
        if self.sample_embeddings is None:
            self.sample_embeddings = embed_videos(self.model, samples.audio, samples.visual).numpy()  # (N, E)
        # Sample labels index the checkpoint's classes, which lead the session's class list.
        classes = analysis.Classes(session.class_ids, session.names, session.seen)
        point = None if query is None else analysis.Query(query.audio, query.visual, query.rho_av, query.source)
        return analysis.embedding_maps(
            samples.audio,
            samples.visual,
            self.sample_embeddings,
            samples.labels,
            classes,
            session.matrix,
            classes,
            query=point,
            method=method,
            seed=seed,
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def modality_contribution(distances, calibrated, has_audio: bool, score) -> ModalityContribution:
    """distances / calibrated (3, C): rows full, without audio, without visual."""
    top = int(np.argmin(calibrated[0]))
    without_audio, without_visual = int(np.argmin(calibrated[1])), int(np.argmin(calibrated[2]))
    audio_shift, visual_shift = distances[1] - distances[0], distances[2] - distances[0]
    rise_audio, rise_visual = audio_shift[top], visual_shift[top]  # how far the prediction moves away
    if not has_audio:
        driver = "visual"
    elif abs(rise_audio - rise_visual) <= 0.25 * max(abs(rise_audio), abs(rise_visual), 1e-9):
        driver = "both"
    else:
        driver = "audio" if rise_audio > rise_visual else "visual"
    a, v = score(without_audio), score(without_visual)
    summary = (
        f"Visual only (audio at its training mean): {a.name}. Audio only (visual at its mean): {v.name}. "
        f"Taking away the audio moves the predicted class by {rise_audio:+.3f}, the visual by {rise_visual:+.3f}: "
        + ("the video has no audio, so the visual decided." if not has_audio else f"{driver} drove this decision.")
    )
    return ModalityContribution(a, v, audio_shift, visual_shift, driver, summary)
