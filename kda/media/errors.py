"""What can be wrong with a media file, one exception per case; each message names the file and a fix."""

from __future__ import annotations

from kda.errors import KdaError


class MediaError(KdaError):
    """A media file that cannot be used; `path` names it."""

    def __init__(self, path, message: str):
        self.path = str(path)
        self.reason = message  # the message without the path (rebuilds the error in another process)
        super().__init__(f"{path}: {message}")


class MediaNotFoundError(MediaError):
    """No file at the path."""


class EmptyFileError(MediaError):
    """A zero-byte file (an interrupted upload or copy)."""


class NotMediaError(MediaError):
    """A file no demuxer recognises (text, an image, an archive renamed .mp4)."""


class CorruptMediaError(MediaError):
    """A media file whose container or stream breaks off or is damaged (e.g. a truncated download)."""


class NoVideoTrackError(MediaError):
    """A media file without a video stream (audio only)."""


class NoAudioTrackError(MediaError):
    """A video without an audio stream; callers may go visual-only and say so."""


class UnsupportedCodecError(MediaError):
    """A stream whose codec the bundled decoder cannot decode."""


class TooLongError(MediaError):
    """Longer than the configured duration limit."""


class TooLargeError(MediaError):
    """Bigger than the configured file-size or frame-size limit."""
