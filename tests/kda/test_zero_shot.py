"""The training-free CLIP scorer: open_clip's own zero-shot arithmetic, reproduced on random weights; knowledge
edits move it; a real video through the studio."""

import numpy as np
import pytest
import torch
from PIL import Image

from kda.knowledge.store import ClassKnowledge, Description, Knowledge
from kda.zero_shot import class_texts

CLASSES = {
    "Flute": ("Playing Flute", "A person holds a silver flute sideways and blows across it."),
    "Drum": ("Playing Drums", "Sticks hit the skins of a drum kit on a small stage."),
    "Dog": ("Dog Barking", "A brown dog stands in a yard with its mouth open."),
}


def knowledge(visual: dict[str, str] | None = None) -> Knowledge:
    k = Knowledge("test", {}, {})
    for class_id, (name, text) in CLASSES.items():
        texts = (
            Description("introduction", f"About {name}."),
            Description("visual", (visual or {}).get(class_id, text)),
        )
        k.set_class(class_id, ClassKnowledge(name, texts))
    return k


@pytest.fixture(scope="module")
def scorer(offline_clip):
    return offline_clip


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(2, 72, 96, 3), dtype=np.uint8)


def test_scores_are_open_clips_zero_shot_arithmetic(scorer, frames):
    import open_clip

    k = knowledge()
    ids = list(CLASSES)
    scores = scorer.score(scorer.video_vector(frames), k, ids, [True, False, True])
    model, texts = scorer.text.model, [class_texts(k, c) for c in ids]
    assert [len(t) for t in texts] == [2, 2, 2] and texts[0][1] == CLASSES["Flute"][1]  # name, visual description
    with torch.no_grad():
        images = torch.stack([scorer.image.preprocess(Image.fromarray(f)) for f in frames])
        image = model.encode_image(images, normalize=True).mean(dim=0)
        image = image / image.norm()
        templates = [lambda c, j=j: texts[int(c)][j] for j in range(2)]
        classifier = open_clip.build_zero_shot_classifier(model, scorer.text.tokenizer, ["0", "1", "2"], templates)
        logits = model.logit_scale.exp() * image @ classifier
    assert scores.cosines == pytest.approx((image @ classifier).numpy(), abs=1e-5)
    assert scores.probabilities == pytest.approx(logits.softmax(dim=0).numpy(), abs=1e-5)
    assert scores.offline and scores.to_json(2)["top"][0]["class_id"] == ids[int(np.argmax(scores.probabilities))]


def test_an_edited_visual_description_moves_that_class_alone_and_encodes_one_text(scorer, frames):
    video = scorer.video_vector(frames)
    before = scorer.score(video, knowledge(), list(CLASSES), [True] * 3)
    encoded = scorer.text.texts_encoded
    after = scorer.score(video, knowledge({"Dog": "Boiling pasta in a steel pot."}), list(CLASSES), [True] * 3)
    assert scorer.text.texts_encoded == encoded + 1  # only the new description
    assert after.cosines[2] != pytest.approx(before.cosines[2], abs=1e-6)
    assert after.cosines[:2] == pytest.approx(before.cosines[:2], abs=1e-7)
