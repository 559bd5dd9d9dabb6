"""Time knowledge embedding: every class from scratch, again from the cache, and after editing one
description (the Knowledge tab's budget: an edit to updated predictions in under 0.5 s).

    python bench/bench_knowledge.py [--knowledge assets/knowledge/ucf.json] [--encoder ViT-B-32-quickgelu@random:0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kda.knowledge import OFFLINE_TEXT_ENCODER, EmbeddingCache, class_embeddings, load_knowledge, load_text_encoder

ROOT = Path(__file__).resolve().parents[1]


def timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"{label:<48} {time.perf_counter() - start:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--knowledge", default=str(ROOT / "assets" / "knowledge" / "ucf.json"))
    parser.add_argument("--encoder", default=OFFLINE_TEXT_ENCODER)
    args = parser.parse_args()

    knowledge = load_knowledge(args.knowledge)
    encoder = timed(f"load {args.encoder}", load_text_encoder, args.encoder)
    texts = sum(len(knowledge.texts(c)) for c in knowledge.class_ids)
    cache = EmbeddingCache()
    timed(
        f"embed all {len(knowledge)} classes ({texts} texts), empty cache", class_embeddings, knowledge, encoder, cache
    )
    timed("embed all classes again (cache hits)", class_embeddings, knowledge, encoder, cache)

    class_id = knowledge.class_ids[0]
    knowledge.set_description(class_id, 1, "A freshly edited description of this class, typed by a user.")
    before = cache.texts_encoded
    timed(f"embed all after editing one text of {class_id}", class_embeddings, knowledge, encoder, cache)
    print(f"texts encoded for the edit: {cache.texts_encoded - before}")
    knowledge.set_description(class_id, 1, "Another edit of the same description.")
    timed(f"embed only {class_id} after another edit", class_embeddings, knowledge, encoder, cache, [class_id])
    timed(f"embed all {len(knowledge)} classes, no cache", class_embeddings, knowledge, encoder, EmbeddingCache())


if __name__ == "__main__":
    main()
