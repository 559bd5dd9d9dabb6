"""From fused embeddings to a decision: distances to the class matrix, calibrated stacking, and the
`Prediction` a person reads. Pure functions of arrays (no model, no files), so re-scoring a video after a
knowledge edit is a distance computation, not another forward pass.

One definition each, used by evaluation, the metrics, the beta search and the studio:
    distances(rho, class_matrix)          d(i, c) = ||rho_i - t_c||
    calibrated(distances, seen, beta)     calibrated stacking: seen classes pay +beta before the argmin
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

# Note codes: what a person should know about a prediction, kept apart from the words that say it.
NO_AUDIO = "no_audio"  # the video had no usable audio: visual only
OFFLINE_EXTRACTOR = "offline_extractor"  # the extractor ran on random weights: the prediction means nothing
EXTRACTION = "extraction"  # a fact about how the features were made (clips used, downscaling, downmixing)


def distances(rho, class_matrix) -> np.ndarray:
    """d(i, c) = ||rho_i - t_c||_2. (N, E), (C, E) -> (N, C) float32."""
    import torch  # here, so that importing kda.knowledge (whose session uses Candidates) loads no model library

    rho = torch.as_tensor(np.asarray(rho, dtype=np.float32))
    return torch.cdist(rho, torch.as_tensor(np.asarray(class_matrix, dtype=np.float32))).numpy()


def calibrated(distances: np.ndarray, seen_mask: np.ndarray, beta: float) -> np.ndarray:
    """Calibrated stacking: `beta` added to the distances of seen classes. (..., C), (C,) -> (..., C)."""
    return distances + beta * np.asarray(seen_mask, dtype=bool)


@dataclass(frozen=True)
class Note:
    code: str  # NO_AUDIO, OFFLINE_EXTRACTOR or EXTRACTION
    message: str

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Candidates:
    """The classes a video is compared with: ids, readable names, seen flags (C,) and their class matrix (C, E)."""

    class_ids: list[str]
    names: list[str]
    seen: np.ndarray
    class_matrix: np.ndarray


@dataclass(frozen=True)
class ClassScore:
    class_id: str
    name: str
    seen: bool
    distance: float  # ||rho_av - t_c||
    score: float  # softmax of -distance / tau (seen classes calibrated by +beta in GZSL), in [0, 1]

    def to_json(self) -> dict:
        return {
            "class_id": self.class_id,
            "name": self.name,
            "seen": self.seen,
            "distance": self.distance,
            "score": self.score,
        }


@dataclass
class ModalityContribution:
    """What each modality did for this prediction, measured by taking it away: the video is embedded again
    with its audio input replaced by the training mean (what the network sees for an average sound, i.e. a
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
    scores: list[ClassScore]  # every candidate, in the candidates' order
    gzsl: list[ClassScore]  # top-k among all classes, seen distances + beta (calibrated stacking)
    zsl: list[ClassScore]  # top-k among unseen classes only
    modality: ModalityContribution
    rho_rows: np.ndarray  # (3, E) rho_av of the video as it is, without audio, without visual
    beta: float
    tau: float
    audio: np.ndarray  # (Da,) the audio input used (the training mean when the video had none)
    visual: np.ndarray  # (Dv,)
    has_audio: bool
    source: str
    notes: list[Note] = field(default_factory=list)

    @property
    def rho_av(self) -> np.ndarray:
        """(E,) the video's fused embedding."""
        return self.rho_rows[0]

    def top(self, zsl: bool = False) -> ClassScore:
        return (self.zsl if zsl else self.gzsl)[0]

    def ranked(self, zsl: bool = False) -> list[tuple[ClassScore, float]]:
        """Every candidate (ZSL: the unseen ones) in the order the ranking puts them, each with the distance it
        is ranked by: GZSL ranks calibrated distances (seen classes + beta), ZSL the distances themselves. The
        first `top_k` are `gzsl` (or `zsl`)."""
        scores = [s for s in self.scores if not (zsl and s.seen)]
        d = np.array([s.distance for s in scores], dtype=np.float64)
        ranked_by = d if zsl else calibrated(d, np.array([s.seen for s in scores], dtype=bool), self.beta)
        return [(scores[i], float(ranked_by[i])) for i in np.argsort(ranked_by, kind="stable")]

    def rescored(self, candidates: Candidates, top_k: int) -> Prediction:
        """The same video against other candidates (after a knowledge edit): distances only, no forward pass."""
        return replace(self, **ranking(self.rho_rows, candidates, self.beta, self.tau, top_k, self.has_audio))

    def to_json(self) -> dict:
        """The one JSON shape of a prediction (the CLI's --json and the app's API)."""
        m = self.modality
        return {
            "source": self.source,
            "notes": [n.to_json() for n in self.notes],
            "has_audio": self.has_audio,
            "beta": self.beta,
            "gzsl": [s.to_json() for s in self.gzsl],
            "zsl": [s.to_json() for s in self.zsl],
            "scores": [s.to_json() for s in self.scores],
            "modality": {
                "driver": m.driver,
                "summary": m.summary,
                "visual_only": m.without_audio.to_json(),
                "audio_only": m.without_visual.to_json(),
            },
        }


def predict(
    rho_rows: np.ndarray,
    candidates: Candidates,
    *,
    beta: float,
    tau: float,
    top_k: int,
    audio: np.ndarray,
    visual: np.ndarray,
    has_audio: bool,
    source: str,
    notes: list[Note],
) -> Prediction:
    """The prediction for one video from its rho_av rows (3, E): as it is, without audio, without visual."""
    rank = ranking(rho_rows, candidates, beta, tau, top_k, has_audio)
    return Prediction(
        **rank,
        rho_rows=rho_rows,
        beta=beta,
        tau=tau,
        audio=audio,
        visual=visual,
        has_audio=has_audio,
        source=source,
        notes=notes,
    )


def ranking(rho_rows: np.ndarray, candidates: Candidates, beta: float, tau: float, top_k: int, has_audio: bool) -> dict:
    """The fields of a Prediction that depend on the candidates: scores, gzsl, zsl and modality."""
    seen = np.asarray(candidates.seen, dtype=bool)
    d = distances(rho_rows, candidates.class_matrix).astype(np.float64)  # (3, C)
    stacked = calibrated(d, seen, beta)
    gzsl_prob = softmax(-stacked[0] / tau)
    zsl_prob = np.zeros_like(gzsl_prob)
    if (~seen).any():
        zsl_prob[~seen] = softmax(-d[0, ~seen] / tau)

    def score(i: int, prob: np.ndarray) -> ClassScore:
        return ClassScore(candidates.class_ids[i], candidates.names[i], bool(seen[i]), float(d[0, i]), float(prob[i]))

    order = np.argsort(stacked[0], kind="stable")
    unseen_order = [i for i in np.argsort(d[0], kind="stable") if not seen[i]]
    return {
        "scores": [score(i, gzsl_prob) for i in range(len(seen))],
        "gzsl": [score(i, gzsl_prob) for i in order[:top_k]],
        "zsl": [score(i, zsl_prob) for i in unseen_order[:top_k]],
        "modality": modality_contribution(d, stacked, has_audio, lambda i: score(i, gzsl_prob)),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def modality_contribution(distances, stacked, has_audio: bool, score) -> ModalityContribution:
    """distances / stacked (calibrated) (3, C): rows as it is, without audio, without visual."""
    top = int(np.argmin(stacked[0]))
    without_audio, without_visual = int(np.argmin(stacked[1])), int(np.argmin(stacked[2]))
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
