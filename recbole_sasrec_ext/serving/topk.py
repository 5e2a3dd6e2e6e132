"""Top-k selection over rows of scores with excluded items (``-inf``)."""

from __future__ import annotations

import numpy as np


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest finite scores of each row, best first.

    Parameters
    ----------
    scores : np.ndarray
        (B, n) float; ``-inf`` (or NaN) marks an item that must not come back.
    k : int
        >= 1; capped at ``n``.

    Returns
    -------
    indices : np.ndarray
        (B, k) int64 item ids, best first (equal scores: smaller id first).
    counts : np.ndarray
        (B,) how many of each row's ``k`` are real (finite): use ``indices[b, :counts[b]]``.
    """
    k = min(k, scores.shape[1])
    neg = -np.where(np.isfinite(scores), scores, -np.inf)  # (B, n) smaller is better
    part = np.argpartition(neg, k - 1, axis=1)[:, :k] if k < scores.shape[1] else (
        np.broadcast_to(np.arange(scores.shape[1]), scores.shape))  # (B, k)
    picked = np.take_along_axis(neg, part, axis=1)  # (B, k)
    order = np.lexsort((part, picked), axis=1)  # (B, k) by score desc, then id
    indices = np.take_along_axis(part, order, axis=1)  # (B, k)
    counts = np.isfinite(np.take_along_axis(picked, order, axis=1)).sum(1)  # (B,)
    return indices.astype(np.int64), counts
