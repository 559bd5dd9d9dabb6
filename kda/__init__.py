"""KDA: knowledge-augmented audio-visual zero-shot video classification.

The public API, by name (imported on first use, so `import kda` stays fast and torch loads only when
needed); `python -m kda --help` lists the command line.

    from kda import Studio
    studio = Studio.load("checkpoints/demo-ucf-cls")
    print(studio.classify("video.mp4").gzsl[0].name)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it
PUBLIC_API = {
    # use a trained checkpoint
    "Studio": "kda.studio",
    "Prediction": "kda.prediction",
    "ClassScore": "kda.prediction",
    "KnowledgeSession": "kda.knowledge.session",
    "KnowledgeAB": "kda.knowledge_ab",  # a checkpoint's test split under edited knowledge (Studio.compare_knowledge)
    "load_checkpoint": "kda.checkpoint",
    "save_checkpoint": "kda.checkpoint",
    "Checkpoint": "kda.checkpoint",
    # class knowledge
    "Knowledge": "kda.knowledge.store",
    "load_knowledge": "kda.knowledge.store",
    "save_knowledge": "kda.knowledge.store",
    "load_text_encoder": "kda.knowledge.encoders",
    "LLMSettings": "kda.knowledge.generate",
    "describe_classes": "kda.knowledge.generate",
    "load_class_matrix": "kda.knowledge.class_matrix",
    # features
    "extract_video": "kda.media.extract",
    "extract_dataset": "kda.media.dataset",
    "get_setting": "kda.settings",
    "list_settings": "kda.settings",
    # the method: model, losses, training, evaluation
    "KDAModel": "kda.model",
    "ModelConfig": "kda.model",
    "LossConfig": "kda.losses",
    "TrainConfig": "kda.train",  # kda.train.train runs the protocol (a function named like its module)
    "get_preset": "kda.presets",  # 'paper' (default) or 'released': every difference in kda/presets.py
    "reproduce": "kda.reproduce",  # the public AVCA features -> results table + checkpoint
    "push_checkpoint": "kda.hub",  # upload a checkpoint with its model card
    "make_space": "kda.space",  # a Hugging Face Space running the app on a checkpoint from the Hub
    "load_benchmark": "kda.benchmark",
    "gzsl_metrics": "kda.metrics",
    # errors
    "KdaError": "kda.errors",
}
__all__ = ["__version__", *PUBLIC_API]


def __getattr__(name: str):
    if name not in PUBLIC_API:
        raise AttributeError(f"module 'kda' has no attribute {name!r}")
    value = getattr(importlib.import_module(PUBLIC_API[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
