"""A loaded checkpoint ready to use: classify videos or features, edit knowledge per session, analyse.

    studio = Studio.load("checkpoints/demo-ucf-cls")      # model, text encoder and extractor, once
    session = studio.new_session()                         # one person's editable knowledge
    prediction = studio.classify("clip.mp4", session)      # top-k under GZSL and ZSL, notes, modalities
    session.edit("ApplyLipstick", ["...", "...", "..."])   # re-encodes only the edited texts
    prediction = studio.rescore(prediction, session)        # distances to the new class matrix, no forward pass
    comparison = studio.compare_knowledge(session)          # the test split under it vs the checkpoint's knowledge

The extractor is the one the checkpoint names (feature setting and weights). A checkpoint trained on
synthetic features has no real extractor: it runs on offline (seeded random) weights, and `banner` and every
prediction's notes say that predictions for uploaded videos then mean nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from kda import analysis
from kda.checkpoint import Checkpoint, ReferenceSamples, load_checkpoint
from kda.errors import KdaError
from kda.evaluation import embed_videos
from kda.knowledge.class_matrix import ClassMatrixBuilder
from kda.knowledge.session import KnowledgeSession
from kda.knowledge.store import ClassKnowledge, Knowledge
from kda.knowledge_ab import Comparison, KnowledgeAB
from kda.losses import LossConfig
from kda.media.decode import DEFAULT_LIMITS, Limits, open_video
from kda.media.extract import DEFAULT_MAX_CLIPS, VideoExtractor
from kda.media.pipeline import DEFAULT_MAX_EXAMPLES, ExtractOptions, NetworkOptions, Progress, VideoFeatures
from kda.model import check_dims
from kda.prediction import EXTRACTION, NO_AUDIO, OFFLINE_EXTRACTOR, Note, Prediction, predict
from kda.zero_shot import FRAMES as ZERO_SHOT_FRAMES
from kda.zero_shot import ZeroShotScorer, ZeroShotScores

NOT_ENCODED = ("precomputed", "synthetic")  # text-encoder ids of knowledge that came as vectors, not texts
# Offline (random) extractor weights give meaningless features however many clips they see, so they get one
# C3D clip (~1.3 s on 2 cores) instead of DEFAULT_MAX_CLIPS (~20 s): the same code path, a fast demo.
OFFLINE_MAX_CLIPS = 1


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
        zero_shot_weights: str | None = None,  # the training-free scorer's CLIP; None: as the extractor's
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
        self.builder, self.why_not_editable = self.load_builder(text_encoder)
        self.base = self.new_session()  # read-only view for callers that pass no session
        self.sample_embeddings: np.ndarray | None = None  # rho_av of the reference sample, made once
        self.zero_shot_weights = zero_shot_weights or self.weights
        self.scorer: ZeroShotScorer | None = None  # built by the first zero-shot request
        self.scorer_lock = threading.Lock()
        # The test split under the checkpoint's own knowledge, scored once: an edit then costs one distance matrix.
        self.ab = KnowledgeAB.of_checkpoint(checkpoint) if checkpoint.test_split is not None else None

    @classmethod
    def load(cls, location: str | Path, **kwargs) -> Studio:
        """From a checkpoint folder or `hf-hub:owner/name` id; keyword arguments as for `Studio`."""
        return cls(load_checkpoint(location), **kwargs)

    def load_builder(self, text_encoder) -> tuple[ClassMatrixBuilder | None, str]:
        """The checkpoint's text encoder and class-matrix form (once), or why its knowledge cannot be re-encoded."""
        ckpt = self.checkpoint
        if ckpt.knowledge is None:
            return None, "the checkpoint stores knowledge vectors without their texts"
        if ckpt.text_encoder in NOT_ENCODED:
            return None, f"its knowledge vectors are {ckpt.text_encoder}, not encoded from texts"
        if text_encoder is None:
            from kda.knowledge.encoders import load_text_encoder

            try:
                text_encoder = load_text_encoder(ckpt.text_encoder)
            except KdaError as e:
                return None, str(e)
        builder = ClassMatrixBuilder(text_encoder, ckpt.class_matrix_form)
        builder.seed(ckpt.text_vectors)  # each stored text's vector: an edit encodes only what changed
        return builder, ""

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
        if self.zero_shot_weights == "pretrained":
            zero_shot = (
                " The zero-shot scores beside each upload's prediction (CLIP on its frames against each class's "
                "name and visual description, no training) use real CLIP weights: for uploads, they are the real "
                "prediction here."
            )
        else:
            zero_shot = (
                " The zero-shot scores beside an upload's prediction run CLIP on random weights: they mean nothing."
            )
        if not self.offline:
            return "" if self.zero_shot_weights == "pretrained" else zero_shot.strip()
        ckpt = self.checkpoint
        features = "synthetic" if ckpt.feature_weights == "none" else "offline (random-weight)"
        knowledge = "real" if ckpt.text_encoder not in NOT_ENCODED else ckpt.text_encoder
        return (
            f"This checkpoint was trained on {features} features; its {ckpt.setting} extractor runs on offline "
            f"random weights, so predictions for uploaded videos mean nothing. The class knowledge ({knowledge}, "
            f"encoded with {ckpt.text_encoder}) and everything computed from it alone (similarity and margin "
            "heatmaps, the knowledge map, the effect of edits) are meaningful. For a real checkpoint, train on the "
            "public AVCA features (README: 'The real benchmarks') and start the app with --checkpoint." + zero_shot
        )

    def new_session(self) -> KnowledgeSession:
        ckpt = self.checkpoint
        knowledge = ckpt.knowledge or Knowledge(
            "checkpoint", {c.id: ClassKnowledge(c.name) for c in ckpt.classes}, {"method": "class names only"}
        )
        return KnowledgeSession(knowledge, ckpt.class_matrix, ckpt.seen_mask, self.builder, self.why_not_editable)

    # -- classification -------------------------------------------------------------------------------

    def extract(self, path: str | Path, progress: Progress | None = None) -> VideoFeatures:
        """The checkpoint's features of one video, in memory. Any number of calls may run at once: they share
        the extractor's networks, built once by the first. `progress(stage, done, total)` hears of each stage as
        it starts: "networks" (building them, the first video only), "visual", "audio"."""
        if progress and self.extractor.built is None:
            progress("networks", 0, 1)
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
        notes = [Note(EXTRACTION, n) for n in features.notes]
        if features.offline:
            message = f"{self.checkpoint.setting} extractor on offline random weights: this prediction means nothing"
            notes.append(Note(OFFLINE_EXTRACTOR, message))
        source = Path(path).name
        return self.classify_features(
            features.audio, features.visual, session, top_k, notes, source, features.audio_missing or "no audio track"
        )

    def zero_shot(self, path: str | Path, session: KnowledgeSession | None = None) -> ZeroShotScores:
        """The training-free CLIP scores of a video (kda.zero_shot), beside KDA's prediction."""
        clip = open_video(path, self.extractor.options.limits)
        frames = clip.frames(clip.uniform_indices(ZERO_SHOT_FRAMES))
        return self.zero_shot_again(self.load_scorer().video_vector(frames), session)

    def zero_shot_again(self, video: np.ndarray, session: KnowledgeSession | None = None) -> ZeroShotScores:
        """A video's unit CLIP vector (E,) against the session's knowledge as it stands now (no frames decoded)."""
        session = session or self.base
        return self.load_scorer().score(video, session.knowledge, session.class_ids, session.seen)

    def warm_up(self) -> None:
        """Build what a first uploaded video would otherwise wait for (seconds on a CPU, a download of pretrained
        weights on a fresh machine): the extractor's networks and the zero-shot scorer. Safe beside requests:
        each is built once, whoever asks first."""
        self.extractor.build()
        self.load_scorer()

    def load_scorer(self) -> ZeroShotScorer:
        with self.scorer_lock:  # built once, whoever asks first
            if self.scorer is None:
                self.scorer = ZeroShotScorer.load(self.zero_shot_weights)
                if self.builder is not None and self.builder.encoder.id == self.scorer.spec:
                    with self.builder.lock:  # the checkpoint's texts, encoded by this very CLIP already
                        vectors = dict(self.builder.vectors)
                    self.scorer.seed(vectors)
            return self.scorer

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
        notes: list[Note] | tuple = (),
        source: str = "features",
        audio_missing: str = "no audio track",
    ) -> Prediction:
        """Classify one video's features (Da,) or None, (Dv,) against the session's classes; `audio_missing` says
        why audio is None."""
        session = session or self.base
        notes = list(notes)
        audio_mean = self.model.audio_norm.mean.cpu().numpy()
        has_audio = audio is not None
        if not has_audio:
            audio = audio_mean
            notes.append(Note(NO_AUDIO, f"{audio_missing}: a visual-only prediction (audio set to its training mean)"))
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        visual = np.asarray(visual, dtype=np.float32).reshape(-1)
        check_dims(self.model.cfg, len(audio), len(visual), source=source)
        visual_mean = self.model.visual_norm.mean.cpu().numpy()
        batch_a = np.stack([audio, audio_mean, audio])  # as it is, without audio, without visual
        batch_v = np.stack([visual, visual, visual_mean])
        rho_rows = embed_videos(self.model, batch_a, batch_v).numpy()  # (3, E)
        return predict(
            rho_rows,
            session.candidates(),
            beta=self.checkpoint.beta,
            tau=self.loss.tau,
            top_k=top_k,
            audio=audio,
            visual=visual,
            has_audio=has_audio,
            source=source,
            notes=notes,
        )

    def rescore(self, prediction: Prediction, session: KnowledgeSession | None = None, top_k: int = 5) -> Prediction:
        """The same video against the session's knowledge as it stands now: distances to the new class matrix
        from the rho_av rows the prediction kept (no forward pass, no extraction)."""
        return prediction.rescored((session or self.base).candidates(), top_k)

    def compare_knowledge(self, session: KnowledgeSession | None = None) -> Comparison:
        """Knowledge A/B on the benchmark: the checkpoint's test split under the session's knowledge against
        under the checkpoint's own (S / U / HM / ZSL at the checkpoint's beta, and the classes that moved)."""
        if self.ab is None:
            raise KdaError(
                "this checkpoint carries no test split, so edits cannot be scored on the benchmark; checkpoints "
                "made by `kda train` or `kda reproduce` carry one"
            )
        session = session or self.base
        with session.lock:  # the classes and which of them changed, read from one state of the knowledge
            candidates, changed = session.candidates(), session.changed()
        return self.ab.compare(candidates, changed)

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
        """Class x class cosine similarity of the session's class matrix t_c (`analysis.Heatmap`)."""
        session = session or self.base
        return analysis.similarity_heatmap(
            session.class_matrix, session.class_ids, session.names, session.seen, order=order, classes=classes
        )

    def margins(self, session=None, order: str = "cluster", classes: list[str] | None = None):
        """The adaptive margins m(y, c) = alpha cos(t_y, t_c) + m0 the loss adds (`analysis.Heatmap`)."""
        session = session or self.base
        return analysis.margin_heatmap(
            session.class_matrix,
            session.class_ids,
            session.names,
            session.seen,
            alpha=self.loss.alpha,
            m0=self.loss.m0,
            margin_weight=self.loss.margin_weight,
            order=order,
            classes=classes,
        )

    def embedding_maps(
        self,
        session=None,
        method: str = "tsne",
        query: Prediction | None = None,
        seed: int = 0,
        progress: Progress | None = None,
    ):
        """2-D maps of the reference sample's audio, visual and fused rho_av, and of the knowledge t_c, with the
        query video placed in them; keyed "audio", "visual", "knowledge", "fused" (`analysis.EmbeddingMap`).
        `progress(stage, done, total)` hears of each stage as it starts: "samples" (their rho_av, made once),
        then each map by its key."""
        session = session or self.base
        samples = self.require_samples()
        if self.sample_embeddings is None:
            if progress:
                progress("samples", 0, 1)
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
            session.class_matrix,
            classes,
            query=point,
            method=method,
            seed=seed,
            progress=progress,
        )
