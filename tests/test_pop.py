"""Pop counts the training split exactly, whatever the batch size, and its metrics match a hand
computation."""

import math
from collections import Counter

import pytest
from conftest import fast_config, tiny_rows, write_inter

from recbole_sasrec_ext import Config, run
from recbole_sasrec_ext.apps.quick_start import build


def _hand_counts(rows):
    """Training-split item counts: every user's items except the last two (leave-one-out), for
    users with >= 4 items; users with 3 items lose 1 (test only), users with 2 lose none, and a
    user with a single item has no training example at all (as in RecBole's prefix samples)."""
    by_user = {}
    for u, i, _t in sorted(rows, key=lambda r: (r[0], r[2])):
        by_user.setdefault(u, []).append(i)
    counts = Counter()
    for items in by_user.values():
        if len(items) < 2:
            continue
        held = min(2, len(items) - 2)
        counts.update(items[: len(items) - held])
    return counts, by_user


@pytest.mark.parametrize("batch_size", [1, 7, 2048])
def test_counts_are_exact_for_any_batch_size(tmp_path, batch_size):
    rows = tiny_rows(seed=3)
    # stable ties: make times strictly increasing per user so the hand split is unambiguous
    rows = [(u, i, 1000 * u + k) for k, (u, i, _) in enumerate(sorted(rows))]
    data = write_inter(tmp_path, "tiny", rows)
    config = Config("Pop", "tiny", config_dict=fast_config(data, train_batch_size=batch_size))
    dataset, train, _, _, model = build(config)
    expected, _ = _hand_counts(rows)
    for token, count in expected.items():
        assert model.item_count[dataset.token2id("item_id", str(token))].item() == count
    assert model.item_count.sum().item() == sum(expected.values())


def test_test_metrics_equal_hand_computation(tmp_path):
    # popularity ranking is fixed: item 1 most popular, then 2, ...; each user's test item is known
    rows, t = [], 0
    pattern = {1: [1, 2, 3, 4, 9], 2: [1, 2, 5, 3, 8], 3: [1, 6, 7, 2, 4], 4: [1, 2, 3, 6, 12]}
    for u, items in pattern.items():
        for i in items:
            rows.append((u, i, t))
            t += 1
    data = write_inter(tmp_path, "hand", rows)
    result = run("Pop", "hand", config_dict=fast_config(
        data, topk=[3], metrics=["Hit", "NDCG"], valid_metric="NDCG@3"
    ))
    # training counts: item1:4, item2:4 (u1,u2 tie? u3's 2 is valid) ...
    train = Counter(i for items in pattern.values() for i in items[:-2])
    # rank by count desc, ties by item id order of RecBole's remapping (first appearance)
    order = sorted(train, key=lambda i: -train[i])
    hits, ndcg = 0, 0.0
    for items in pattern.values():
        target = items[-1]
        ranking = [i for i in order][:3]
        if target in ranking:
            hits += 1
            ndcg += 1 / math.log2(ranking.index(target) + 2)
    assert result.test_result["hit@3"] == pytest.approx(hits / 4, abs=1e-4)
    assert result.test_result["ndcg@3"] == pytest.approx(ndcg / 4, abs=1e-4)
    assert result.stopped_by == "one_pass"  # fitted at construction: not an epoch cap
