"""One visitor's state (their private knowledge session, their last prediction, their cached maps, and what
each tab last drew from) and the helpers more than one tab uses: the class choices of a picker and the
prediction as JSON.

Plain Python (no Gradio), so it is testable on its own; the tabs keep one `Visitor` per browser session in a
`gr.State`, which is what keeps one visitor's edits away from every other visitor. Tabs never import each
other: what two of them share lives here.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from kda.analysis import EmbeddingMap
from kda.errors import KdaError
from kda.knowledge.session import KnowledgeSession
from kda.media.pipeline import Progress
from kda.prediction import Prediction
from kda.studio import Studio
from kda.zero_shot import ZeroShotScores

MAP_CACHE = 8  # embedding-map sets kept per visitor (method x knowledge version x query)


@dataclass
class Visitor:
    session: KnowledgeSession
    prediction: Prediction | None = None  # the last classified video, re-scored after every knowledge change
    top_k: int = 5
    maps: dict[tuple, dict[str, EmbeddingMap]] = field(default_factory=dict)
    predictions: int = 0  # predictions made or re-scored so far: a tab drawn before the last one is stale
    drawn: dict[str, tuple[int, int]] = field(default_factory=dict)  # tab -> the `stamp` it last drew from
    zero_shot: ZeroShotScores | None = None  # the training-free scores of the last uploaded video (kda.zero_shot)
    restored: str | None = None  # what starting from the browser's saved edits did, until the visitor is told
    restore_failed: bool = False  # those edits could not be applied: the knowledge is the checkpoint's

    @classmethod
    def start(cls, studio: Studio, visitor: Visitor | None = None, saved: dict | None = None) -> Visitor:
        """The visitor as they are, or a fresh one with the checkpoint's knowledge and, where their browser kept
        edits (`saved`, demo.saved_edits), those edits on it."""
        if visitor is not None:
            return visitor
        visitor = cls(studio.new_session())
        if saved is not None:
            try:
                classes = visitor.session.restore_edits(saved)
            except KdaError as e:
                visitor.restore_failed = True
                visitor.restored = f"Your saved edits could not be restored ({e}); the knowledge is the checkpoint's."
            else:
                visitor.restored = (
                    f"Your edits of {len(classes)} class(es) were restored from this browser (the server had not "
                    "kept them: a reload, a restart or a long pause)."
                )
        return visitor

    def classified(self, prediction: Prediction, top_k: int, zero_shot: ZeroShotScores | None = None) -> Prediction:
        """A new video: its prediction, and for an upload its zero-shot scores (a reference sample has no frames)."""
        self.prediction, self.top_k, self.zero_shot = prediction, top_k, zero_shot
        self.predictions += 1
        return prediction

    def rescore(self, studio: Studio) -> Prediction | None:
        """The last video's prediction against the knowledge as it stands now (features are kept, so this is
        one forward pass, not a new extraction)."""
        if self.prediction is not None:
            self.prediction = studio.rescore(self.prediction, self.session, self.top_k)
            self.predictions += 1
        if self.zero_shot is not None:  # the same frames against the knowledge as it stands now
            self.zero_shot = studio.zero_shot_again(self.zero_shot.video, self.session)
        return self.prediction

    def embedding_maps(self, studio: Studio, method: str, progress: Progress | None = None) -> dict[str, EmbeddingMap]:
        """The four maps, cached per (method, knowledge version, query) so switching back is instant;
        `progress` as for `Studio.embedding_maps` (a cached set reports nothing)."""
        query = self.prediction
        key = (method, self.session.version, None if query is None else (query.source, query.rho_av.tobytes()))
        if key not in self.maps:
            while len(self.maps) >= MAP_CACHE:
                self.maps.pop(next(iter(self.maps)))
            self.maps[key] = studio.embedding_maps(self.session, method=method, query=query, progress=progress)
        return self.maps[key]

    # -- what the tabs drew from ----------------------------------------------------------------------

    @property
    def stamp(self) -> tuple[int, int]:
        """What a tab that depends on the knowledge draws from, as it stands now: (knowledge version,
        predictions so far). Both only grow, so an equal stamp means nothing has changed since."""
        return self.session.version, self.predictions

    def stale(self, tab: str) -> bool:
        """Whether `tab` was never drawn, or drawn from other knowledge or another prediction than now."""
        return self.drawn.get(tab) != self.stamp

    def drew(self, tab: str, stamp: tuple[int, int]) -> None:
        """`tab` now shows what the visitor's state was at `stamp` (read before drawing, so a change made
        while it drew leaves it stale)."""
        self.drawn[tab] = stamp


def class_choices(visitor: Visitor) -> list[tuple[str, str]]:
    """(label, class id) of every class of the visitor's knowledge, for pickers: "Name (seen)"."""
    session = visitor.session
    return [
        (f"{n} ({'seen' if s else 'unseen'})", c)
        for c, n, s in zip(session.class_ids, session.names, session.seen, strict=True)
    ]


def markdown_text(value: object) -> str:
    """`value` (a class or file name, or any text that holds one) for a Markdown component, shown as the
    characters it is: the punctuation that makes Markdown markup inside a line backslash-escaped (emphasis,
    code, links, images and bare URLs, strike-through, headings), then HTML's three specials as entities.
    Plain punctuation stays as it is, so API callers read the same sentence."""
    escaped = re.sub(r"([\\`*_\[\]~#]|:(?=//))", r"\\\1", str(value))
    return html.escape(escaped, quote=False)


def prediction_dict(prediction: Prediction | None) -> dict | None:
    """The prediction as plain JSON, for API callers: the library's one shape (`Prediction.to_json`)."""
    return None if prediction is None else prediction.to_json()
