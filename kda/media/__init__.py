"""Video in, features out: robust decoding (decord), the benchmark-compatible C3D + VGGish extractor,
a CLIP frame backbone, the feature-setting registry, and extraction of a labelled folder of videos
into an AVCA dataset root."""

from kda.media.backbones import (
    NO_EXTRACTOR,
    SETTINGS,
    WEIGHTS,
    Backbone,
    BackboneError,
    FeatureSetting,
    get_setting,
    load_backbone,
)
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
    "FeatureSetting",
    "LabelsError",
    "Limits",
    "MediaError",
    "MediaNotFoundError",
    "NO_EXTRACTOR",
    "NoAudioTrackError",
    "NoVideoTrackError",
    "NotMediaError",
    "SETTINGS",
    "TooLargeError",
    "TooLongError",
    "UnsupportedCodecError",
    "Video",
    "VideoFeatures",
    "WEIGHTS",
    "extract_dataset",
    "extract_video",
    "get_setting",
    "load_backbone",
    "open_video",
    "read_audio",
]
