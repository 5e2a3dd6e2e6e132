"""Per-user paired tests: Holm's adjustment, the two tests on hand-made vectors, alignment by
user."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from recbole_sasrec_ext.benchmark.significance import (
    align,
    format_p,
    holm,
    mean_over_seeds,
    paired_user_test,
)
from recbole_sasrec_ext.benchmark.significance import (
    tests_against_reference as against_reference,
)


def test_holm_exact_values() -> None:
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # None is left out of m; adjusted values are capped at 1
    assert holm([None, 0.2, 0.6]) == [None, pytest.approx(0.4), pytest.approx(0.6)]
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []


def test_paired_tests_on_hand_made_vectors() -> None:
    model = np.array([1.0, 0.0, 0.5, 0.2])
    reference = np.array([0.5, 0.0, 0.5, 0.1])
    test = paired_user_test(model, reference)
    # differences 0.5, 0, 0, 0.1: mean 0.15, sample sd sqrt(0.17 / 3), t = 0.15 / (sd / 2), df 3
    t = 0.15 / (math.sqrt(0.17 / 3) / 2)
    assert test.p_t == pytest.approx(2 * stats.t.sf(t, df=3), rel=1e-12)
    # Wilcoxon, zeros dropped: two positive differences, exact p = 2 * P(both positive) = 0.5
    assert (test.n_nonzero, test.p_wilcoxon) == (2, pytest.approx(0.5))
    assert (test.n_users, test.mean, test.reference_mean) == (4, 0.425, 0.275)
    assert test.delta_pct == pytest.approx(100 * (0.425 - 0.275) / 0.275)


def test_no_difference_has_no_p_value() -> None:
    same = np.array([0.0, 0.5, 1.0])
    test = paired_user_test(same, same)
    assert (test.p_t, test.p_wilcoxon, test.n_nonzero, test.delta_pct) == (None, None, 0, 0.0)
    assert paired_user_test(np.zeros(2), np.zeros(2)).delta_pct is None  # reference mean 0


def test_align_pairs_values_by_user() -> None:
    a, b = align(np.array(["u3", "u1", "u2"]), np.array([3.0, 1.0, 2.0]),
                 np.array(["u2", "u3", "u9"]), np.array([20.0, 30.0, 90.0]))
    assert a.tolist() == [2.0, 3.0] and b.tolist() == [20.0, 30.0]
    with pytest.raises(ValueError, match="lists a user twice"):
        align(np.array(["u1", "u1"]), np.zeros(2), np.array(["u1"]), np.zeros(1))


def test_tests_against_reference_adjusts_across_models() -> None:
    rng = np.random.default_rng(0)
    users = np.array([f"u{i}" for i in range(200)])
    reference = (users, rng.random(200))
    better = (users, reference[1] + 0.1 + 0.01 * rng.random(200))
    noise = (users, reference[1] + 0.01 * rng.standard_normal(200))
    tests = against_reference({"better": (better, reference), "noise": (noise, reference)})
    raw = [tests["better"].p_t, tests["noise"].p_t]
    assert [tests["better"].p_t_holm, tests["noise"].p_t_holm] == pytest.approx(holm(raw))
    assert (tests["better"].p_wilcoxon_holm < 1e-4
            and format_p(tests["better"].p_t_holm) == "< 1e-4 †")
    assert format_p(0.2) == "0.2000" and format_p(0.01) == "0.0100 †" and format_p(None) == "n/a"


def test_mean_over_seeds_uses_common_users() -> None:
    users, values = mean_over_seeds([
        (np.array(["a", "b", "c"]), np.array([1.0, 2.0, 3.0])),
        (np.array(["c", "a"]), np.array([5.0, 0.0])),
    ])
    assert users.tolist() == ["a", "c"] and values.tolist() == [0.5, 4.0]
