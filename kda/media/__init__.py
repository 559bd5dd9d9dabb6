"""Video in, features out: robust decoding (decord), the benchmark-compatible C3D + VGGish extractor
(`VideoExtractor`, `extract_video`), a CLIP frame backbone, the backbone registry, and extraction of a
labelled folder of videos into an AVCA dataset root (`extract_dataset`)."""

from kda.media.backbones import WEIGHTS, Backbone, BackboneError, load_backbone
from kda.media.dataset import DatasetOptions, ExtractSummary, extract_dataset
from kda.media.decode import Audio, Limits, Video, open_video, read_audio
from kda.media.errors import (
    CorruptMediaError,
    EmptyFileError,
    MediaError,
    MediaNotFoundError,
    NoAudioTrackError,
    NotMediaError,
    NoVideoTrackError,
    TooLargeError,
    TooLongError,
    UnsupportedCodecError,
)
from kda.media.extract import DEFAULT_MAX_CLIPS, VideoExtractor, extract_video
from kda.media.labels import LabelsError
from kda.media.pipeline import DEFAULT_FRAMES, DEFAULT_MAX_EXAMPLES, ExtractOptions, NetworkOptions, VideoFeatures

__all__ = [
    "Audio",
    "Backbone",
    "BackboneError",
    "CorruptMediaError",
    "DatasetOptions",
    "DEFAULT_FRAMES",
    "DEFAULT_MAX_CLIPS",
    "DEFAULT_MAX_EXAMPLES",
    "EmptyFileError",
    "ExtractOptions",
    "ExtractSummary",
    "LabelsError",
    "Limits",
    "MediaError",
    "MediaNotFoundError",
    "NetworkOptions",
    "NoAudioTrackError",
    "NoVideoTrackError",
    "NotMediaError",
    "TooLargeError",
    "TooLongError",
    "UnsupportedCodecError",
    "Video",
    "VideoExtractor",
    "VideoFeatures",
    "WEIGHTS",
    "extract_dataset",
    "extract_video",
    "load_backbone",
    "open_video",
    "read_audio",
]
