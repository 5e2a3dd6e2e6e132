"""Right-padded batches of item-id sequences, as long as their longest member."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_right(sequences: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack non-empty id sequences right-padded with 0, each cut to its last ``max_len`` ids.

    The window is only as long as the longest (cut) sequence, so that a batch of short sequences
    costs what they need: with causal attention and right padding the padding after a sequence
    never changes its scores.

    Returns
    -------
    item_seq : np.ndarray
        (B, L) int64, L = min(max_len, longest length).
    lengths : np.ndarray
        (B,) int64, each >= 1.
    """
    lengths = np.fromiter((min(len(s), max_len) for s in sequences), np.int64, len(sequences))
    if len(lengths) and lengths.min() < 1:
        raise ValueError("pad_right: empty sequence (serve those from popularity)")
    item_seq = np.zeros((len(sequences), int(lengths.max(initial=1))), dtype=np.int64)  # (B, L)
    for row, (seq, n) in enumerate(zip(sequences, lengths)):
        item_seq[row, :n] = seq[len(seq) - n :]
    return item_seq, lengths
