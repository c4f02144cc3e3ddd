"""Byte-level tokenisation of LRA's Text and Retrieval tasks.

LRA encodes text with `tfds.deprecated.text.ByteTextEncoder`: each UTF-8 byte b becomes id b + 1
(1..256) and 0 is padding, so the vocabulary has 257 ids. Bytes, not Unicode characters: a
multi-byte character is several tokens (S4 and S5 use characters instead; LRA_SPEC pitfall 9).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tasks.base import PAD_ID

BYTE_VOCAB_SIZE = 257  # 256 byte values + padding
TOKEN_DTYPE = np.int16  # holds 0..256


def encode_bytes(data: bytes, max_length: int) -> np.ndarray:
    """(min(len(data), max_length),) int16 ids of the first `max_length` bytes of `data`."""
    return np.frombuffer(data[:max_length], dtype=np.uint8).astype(TOKEN_DTYPE) + 1


def encode_documents(documents: Sequence[bytes], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte ids of several documents, right-padded with PAD_ID.

    Returns tokens (n, max_length) int16 and lengths (n,) int32. An empty document has length 0
    (the caller decides whether that is an error)."""
    tokens = np.full((len(documents), max_length), PAD_ID, dtype=TOKEN_DTYPE)
    lengths = np.zeros(len(documents), dtype=np.int32)
    for row, document in enumerate(documents):
        ids = encode_bytes(document, max_length)
        tokens[row, : len(ids)] = ids
        lengths[row] = len(ids)
    return tokens, lengths
