"""Video in, features out: robust decoding (decord), the benchmark-compatible C3D + VGGish extractor,
a CLIP frame backbone, the backbone registry, and extraction of a labelled folder of videos
into an AVCA dataset root."""

from kda.media.backbones import WEIGHTS, Backbone, BackboneError, load_backbone
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
from kda.media.extract import (
    DEFAULT_FRAMES,
    DEFAULT_MAX_CLIPS,
    DEFAULT_MAX_EXAMPLES,
    ExtractSummary,
    VideoFeatures,
    extract_dataset,
    extract_video,
)
from kda.media.labels import LabelsError

__all__ = [
    "Audio",
    "Backbone",
    "BackboneError",
    "CorruptMediaError",
    "DEFAULT_FRAMES",
    "DEFAULT_MAX_CLIPS",
    "DEFAULT_MAX_EXAMPLES",
    "EmptyFileError",
    "ExtractSummary",
    "LabelsError",
    "Limits",
    "MediaError",
    "MediaNotFoundError",
    "NoAudioTrackError",
    "NoVideoTrackError",
    "NotMediaError",
    "TooLargeError",
    "TooLongError",
    "UnsupportedCodecError",
    "Video",
    "VideoFeatures",
    "WEIGHTS",
    "extract_dataset",
    "extract_video",
    "load_backbone",
    "open_video",
    "read_audio",
]
