"""Per-user paired significance tests of models against a reference model, Holm-corrected.

Each model's per-user test metric (e.g. NDCG@10 of every test user, written next to each run by
:mod:`recbole_sasrec_ext.evaluation.per_user`) is paired with the reference's value for the same
user. Two tests per model: the paired t-test (``scipy.stats.ttest_rel``) and the Wilcoxon
signed-rank test (``scipy.stats.wilcoxon`` with ``zero_method="wilcox"``: users whose two values
are equal, typically both 0, are left out, the textbook test). The p-values of the models compared
with the same reference are adjusted together with Holm's step-down method (:func:`holm`), one
family per test. Works with a single seed; with several, each user's value is the mean over the
seeds both models have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

ALPHA = 0.05
MARKER = "†"  # a p-value below ALPHA after Holm's adjustment
WILCOXON_ZERO_METHOD = "wilcox"


@dataclass(frozen=True)
class UserTest:
    """One model against the reference over their common users."""

    n_users: int
    mean: float
    reference_mean: float
    n_nonzero: int  # users whose two values differ (the Wilcoxon test's sample)
    p_t: float | None  # paired t-test, before adjustment (None: undefined, e.g. no differences)
    p_wilcoxon: float | None
    p_t_holm: float | None = None
    p_wilcoxon_holm: float | None = None

    @property
    def delta_pct(self) -> float | None:
        """``100 * (mean - reference_mean) / reference_mean``
        (None when the reference's mean is 0)."""
        if self.reference_mean == 0:
            return None
        return 100.0 * (self.mean - self.reference_mean) / self.reference_mean


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment: the i-th smallest of m p-values becomes
    ``max_{j <= i} min(1, (m - j + 1) * p_(j))``; None entries are left out of m and stay None."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def paired_user_test(values: np.ndarray, reference: np.ndarray) -> UserTest:
    """Both tests of ``values`` against ``reference`` (the same users in the same order)."""
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values of different shapes {x.shape} and {y.shape}")
    diff = x - y
    n_nonzero = int(np.count_nonzero(diff))
    p_t = p_w = None
    if len(x) >= 2 and np.ptp(diff) > 0:  # a constant difference has no t statistic
        p_t = _finite(stats.ttest_rel(x, y).pvalue)
    if n_nonzero >= 1:
        p_w = _finite(stats.wilcoxon(x, y, zero_method=WILCOXON_ZERO_METHOD).pvalue)
    return UserTest(
        n_users=len(x),
        mean=float(x.mean()) if len(x) else math.nan,
        reference_mean=float(y.mean()) if len(y) else math.nan,
        n_nonzero=n_nonzero,
        p_t=p_t,
        p_wilcoxon=p_w,
    )


def align(
    users: np.ndarray, values: np.ndarray, ref_users: np.ndarray, ref_values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The two value vectors restricted to the users both have, in the same (sorted) user order.

    Raises
    ------
    ValueError
        If a user appears twice in either input (values cannot be paired by user).
    """
    for name, u in (("model", users), ("reference", ref_users)):
        if len(np.unique(u)) != len(u):
            raise ValueError(f"the {name}'s per-user file lists a user twice")
    common, i, j = np.intersect1d(users, ref_users, assume_unique=True, return_indices=True)
    return np.asarray(values)[i], np.asarray(ref_values)[j]


UserValues = tuple[np.ndarray, np.ndarray]  # (users, values)


def tests_against_reference(
    pairs: Mapping[str, tuple[UserValues, UserValues]]
) -> dict[str, UserTest]:
    """:func:`paired_user_test` of every model against the reference over their common users
    (label -> (model's (users, values), reference's (users, values)); the reference's values may
    differ per model when their seeds do), with both p-values Holm-adjusted across the models."""
    raw = {
        label: paired_user_test(*align(*values, *reference))
        for label, (values, reference) in pairs.items()
    }
    labels = list(raw)
    t_holm = holm([raw[label].p_t for label in labels])
    w_holm = holm([raw[label].p_wilcoxon for label in labels])
    return {
        label: replace(raw[label], p_t_holm=t, p_wilcoxon_holm=w)
        for label, t, w in zip(labels, t_holm, w_holm)
    }


def format_p(p: float | None) -> str:
    """``0.0123 †`` (the marker when p < ALPHA), ``< 1e-4 †``, or ``n/a``."""
    if p is None:
        return "n/a"
    text = "< 1e-4" if p < 1e-4 else f"{p:.4f}"
    return f"{text} {MARKER}" if p < ALPHA else text


def mean_over_seeds(per_seed: Sequence[UserValues]) -> UserValues:
    """Each user's mean over several runs' (users, values), for the users every run has."""
    users = per_seed[0][0]
    for other, _ in per_seed[1:]:
        users = np.intersect1d(users, other)
    columns = []
    for run_users, values in per_seed:
        position = {u: k for k, u in enumerate(run_users)}
        columns.append(np.asarray(values, dtype=np.float64)[[position[u] for u in users]])
    return np.asarray(users), np.mean(columns, axis=0)
