"""What every text encoder shares (kda/knowledge/encoders.py): texts cut to what the encoder reads before
tokenising, and one encoder shared by many callers in turn, batch by batch, so a long call never makes a short
one wait for all of it."""

import threading

import numpy as np
import pytest

from kda.knowledge import TINY_TEXT_ENCODER, load_text_encoder
from kda.knowledge.encoders import LOCK_BATCH, FifoLock

SENTENCE = "A drummer hits a snare drum while a crowd claps along to the beat. "


@pytest.fixture(scope="module")
def encoder():
    return load_text_encoder(TINY_TEXT_ENCODER)


def test_a_long_text_is_cut_to_what_the_encoder_reads_and_encodes_the_same(encoder):
    assert encoder.max_tokens == 77 and encoder.max_chars == 77 * 16
    long = SENTENCE * 20_000  # 1.3 MB
    assert encoder.cut(long) == long[: encoder.max_chars] and encoder.cut(SENTENCE) == SENTENCE
    np.testing.assert_array_equal(encoder.encode([long]), encoder.encode([long[: encoder.max_chars]]))
    np.testing.assert_allclose(encoder.encode([long]), encoder.encode([SENTENCE * 30]), atol=1e-6)  # 77 tokens in


def test_fifo_lock_serves_waiters_in_the_order_they_asked():
    lock, order, started = FifoLock(), [], []
    with lock:  # held, so every thread below queues
        threads = []
        for i in range(5):
            thread = threading.Thread(
                target=lambda i=i: (started.append(i), lock.__enter__(), order.append(i), lock.__exit__())
            )
            thread.start()
            while lock.next_ticket < i + 2:  # this thread has drawn its ticket before the next one starts
                threading.Event().wait(0.001)
            threads.append(thread)
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4]


def test_a_short_call_is_served_while_a_long_one_is_still_encoding(encoder):
    texts = [f"{i} {SENTENCE * 10}" for i in range(40 * LOCK_BATCH)]
    finished = threading.Event()
    long = threading.Thread(target=lambda: (encoder.encode(texts), finished.set()))
    before = encoder.texts_encoded
    long.start()
    while encoder.texts_encoded == before:  # the long call has begun
        threading.Event().wait(0.001)
    encoder.encode(["A short text of another caller."])
    assert not finished.is_set()  # served between two of the long call's batches, not after all of them
    long.join(120)
