"""The base of every error kda raises for bad input (files, classes, media, servers)."""


class KdaError(Exception):
    """Bad input or an unavailable resource; the message says what and how to fix it."""
