"""Silencing a library's log records while it loads (open_clip logs a warning for every model it builds without
pretrained weights, which the caller already states) without silencing anything else the process logs.

`logging.disable` or a level on the root logger would do it for the whole process: the app's own lines from
other threads (a visitor's refused request while the networks load in the background) would be lost."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_root_logger(below: int = logging.ERROR) -> Iterator[None]:
    """Drop records under `below` that this thread logs through the root logger (as open_clip does, with
    `logging.warning`) for the duration; other loggers and other threads are untouched."""
    thread = threading.get_ident()

    def keep(record: logging.LogRecord) -> bool:
        return record.thread != thread or record.levelno >= below

    logging.root.addFilter(keep)
    try:
        yield
    finally:
        logging.root.removeFilter(keep)
