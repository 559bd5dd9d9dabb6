"""One visitor's state: their private knowledge session, their last prediction and their cached maps.

Plain Python (no Gradio), so it is testable on its own; the tabs keep one `Visitor` per browser session in a
`gr.State`, which is what keeps one visitor's edits away from every other visitor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kda.analysis import EmbeddingMap
from kda.session import KnowledgeSession
from kda.studio import Prediction, Studio

MAP_CACHE = 8  # embedding-map sets kept per visitor (method x knowledge version x query)


@dataclass
class Visitor:
    session: KnowledgeSession
    prediction: Prediction | None = None  # the last classified video, re-scored after every knowledge change
    top_k: int = 5
    maps: dict[tuple, dict[str, EmbeddingMap]] = field(default_factory=dict)

    @classmethod
    def start(cls, studio: Studio, visitor: Visitor | None = None) -> Visitor:
        """The visitor as they are, or a fresh one with the checkpoint's knowledge."""
        return visitor if visitor is not None else cls(studio.new_session())

    def classified(self, prediction: Prediction, top_k: int) -> Prediction:
        self.prediction, self.top_k = prediction, top_k
        return prediction

    def rescore(self, studio: Studio) -> Prediction | None:
        """The last video's prediction against the knowledge as it stands now (features are kept, so this is
        one forward pass, not a new extraction)."""
        if self.prediction is not None:
            self.prediction = studio.rescore(self.prediction, self.session, self.top_k)
        return self.prediction

    def embedding_maps(self, studio: Studio, method: str) -> dict[str, EmbeddingMap]:
        """The four maps, cached per (method, knowledge version, query) so switching back is instant."""
        query = self.prediction
        key = (method, self.session.version, None if query is None else (query.source, query.rho_av.tobytes()))
        if key not in self.maps:
            while len(self.maps) >= MAP_CACHE:
                self.maps.pop(next(iter(self.maps)))
            self.maps[key] = studio.embedding_maps(self.session, method=method, query=query)
        return self.maps[key]
