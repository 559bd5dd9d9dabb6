"""Silencing a library's root-logger warnings while it loads leaves every other thread's log lines alone (the
app logs each refused request while the networks load in the background)."""

import logging
import threading

from kda.quiet import quiet_root_logger


def test_only_this_threads_root_records_under_the_level_are_dropped(caplog):
    caplog.set_level(logging.INFO)
    app = logging.getLogger("kda.app")

    def another_visitor():
        app.info("edit refused: from another thread")
        logging.warning("a root warning from another thread")

    with quiet_root_logger():
        logging.warning("open_clip: no pretrained weights")  # what a load says through the root logger
        logging.error("a real error still shows")
        app.info("this thread's own named logger still shows")
        visitor = threading.Thread(target=another_visitor)
        visitor.start()
        visitor.join()
    logging.warning("after the load, root warnings show again")
    assert [r.getMessage() for r in caplog.records] == [
        "a real error still shows",
        "this thread's own named logger still shows",
        "edit refused: from another thread",
        "a root warning from another thread",
        "after the load, root warnings show again",
    ]
