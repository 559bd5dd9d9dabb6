"""Class knowledge: the texts of each class (store), written by an LLM (generate), turned by a text encoder
(encoders: CLIP text towers, sentence-transformers models) into the class matrix t_c (class_matrix, the one
builder), and edited per person with undo and reset (session).

Importing this package does not import torch, sentence_transformers or openai; the functions that need them import them.
"""

from kda.knowledge.class_matrix import (
    FORMS,
    ClassMatrix,
    ClassMatrixBuilder,
    encode_knowledge,
    load_class_matrix,
    save_class_matrix,
)
from kda.knowledge.encoders import (
    DEFAULT_TEXT_ENCODER,
    MINILM_TEXT_ENCODER,
    OFFLINE_TEXT_ENCODER,
    TINY_TEXT_ENCODER,
    TextEncoder,
    TextEncoderError,
    load_text_encoder,
    parse_spec,
)
from kda.knowledge.generate import (
    DEFAULT_MODEL,
    QUESTIONS,
    DescribeResult,
    LLMAuthError,
    LLMError,
    LLMKeyMissingError,
    LLMMalformedOutputError,
    LLMRateLimitError,
    LLMRefusalError,
    LLMSettings,
    LLMTimeoutError,
    LLMUnreachableError,
    describe_class,
    describe_classes,
    read_class_list,
)
from kda.knowledge.session import KnowledgeSession, NotEditableError
from kda.knowledge.store import (
    ASPECTS,
    FORMAT,
    ClassKnowledge,
    Description,
    Knowledge,
    KnowledgeError,
    load_knowledge,
    parse_knowledge,
    save_knowledge,
)

__all__ = [
    "ASPECTS",
    "DEFAULT_MODEL",
    "DEFAULT_TEXT_ENCODER",
    "FORMAT",
    "MINILM_TEXT_ENCODER",
    "OFFLINE_TEXT_ENCODER",
    "QUESTIONS",
    "TINY_TEXT_ENCODER",
    "ClassKnowledge",
    "DescribeResult",
    "Description",
    "FORMS",
    "ClassMatrix",
    "ClassMatrixBuilder",
    "Knowledge",
    "KnowledgeError",
    "KnowledgeSession",
    "LLMAuthError",
    "LLMError",
    "LLMKeyMissingError",
    "LLMMalformedOutputError",
    "LLMRateLimitError",
    "LLMRefusalError",
    "LLMSettings",
    "LLMTimeoutError",
    "LLMUnreachableError",
    "NotEditableError",
    "TextEncoder",
    "TextEncoderError",
    "encode_knowledge",
    "describe_class",
    "describe_classes",
    "load_class_matrix",
    "save_class_matrix",
    "load_knowledge",
    "load_text_encoder",
    "parse_knowledge",
    "parse_spec",
    "read_class_list",
    "save_knowledge",
]
