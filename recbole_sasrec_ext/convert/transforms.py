"""Frame -> frame steps between reading and writing: the k-core filter, Amazon's sort and
renumbering, and integral float columns made int64 for writing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recbole_sasrec_ext.convert.columns import ITEM, TIME, USER

MAX_EXACT_INT_FLOAT = 2**53  # integral floats below this are written without ".0"


def _check_kcore_args(min_count: int, max_passes: int | None) -> None:
    if min_count < 0:
        raise ValueError(f"min_count must be >= 0, got {min_count}")
    if max_passes is not None and max_passes < 1:
        raise ValueError(f"k-core passes must be >= 1 or None, got {max_passes}")


def kcore_filter(frame: pd.DataFrame, min_count: int,
                 max_passes: int | None = None) -> pd.DataFrame:
    """Keep the rows whose user and item both have at least ``min_count`` rows.

    Each pass counts users and items on the rows kept so far and drops, at once, every row whose
    user or item is below ``min_count``; passes repeat until nothing changes (the k-core, which
    does not depend on the order of removal) or ``max_passes`` is reached. ``max_passes=1`` is
    the single pass of SASRec's ``DataProcessing.py``. Repeated (user, item) rows all count.

    Parameters
    ----------
    frame
        Rows with ``user_id`` and ``item_id`` columns; row order is kept.
    min_count
        Threshold k; 0 or 1 keeps everything.
    max_passes
        At most this many passes (>= 1); ``None`` iterates until stable.
    """
    _check_kcore_args(min_count, max_passes)
    if min_count <= 1 or frame.empty:
        return frame
    user_codes, user_ids = pd.factorize(frame[USER])
    item_codes, item_ids = pd.factorize(frame[ITEM])
    keep = np.ones(len(frame), dtype=bool)
    passes = 0
    while max_passes is None or passes < max_passes:
        passes += 1
        user_counts = np.bincount(user_codes[keep], minlength=len(user_ids))
        item_counts = np.bincount(item_codes[keep], minlength=len(item_ids))
        new_keep = keep & (user_counts[user_codes] >= min_count) \
            & (item_counts[item_codes] >= min_count)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return frame[keep].reset_index(drop=True)


def sort_and_renumber(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort stably by (user id string, timestamp) and renumber users and items from 1.

    Users get 1, 2, ... in sorted order of their original ids; items get 1, 2, ... in order of
    first appearance in the sorted rows. Ties in time keep the input order.
    """
    user_codes, _ = pd.factorize(frame[USER].astype(str), sort=True)
    order = np.lexsort((frame[TIME].to_numpy(), user_codes))  # np.lexsort is stable
    out = frame.iloc[order].reset_index(drop=True)
    out[USER] = user_codes[order].astype(np.int64) + 1
    out[ITEM] = pd.factorize(out[ITEM])[0].astype(np.int64) + 1
    return out


def _compact(values: pd.Series) -> pd.Series:
    """Integral float columns become int64 so that they are written without ``.0``."""
    array = values.to_numpy()
    if array.dtype.kind == "f" and len(array) and np.all(np.isfinite(array)) \
            and np.all(np.abs(array) < MAX_EXACT_INT_FLOAT) and np.all(array == np.floor(array)):
        return pd.Series(array.astype(np.int64), index=values.index)
    return values
