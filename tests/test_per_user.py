"""Per-user test metrics: RecBole's per-user values of a hand-made case, and a run's file whose
means are the run's reported metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import fast_config

from recbole_sasrec_ext import run
from recbole_sasrec_ext.evaluation import per_user
from recbole_sasrec_ext.evaluation.per_user import PerUser, PerUserRecorder, per_user_metrics


def test_per_user_values_of_a_hand_made_top3() -> None:
    # rows: hit flags of the top 3 items, then the number of positives (leave-one-out: 1)
    topk = np.array([[0, 1, 0, 1], [1, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1]])
    values = per_user_metrics(topk, ["Hit", "NDCG"], [1, 3])
    assert values["hit@1"].tolist() == [0, 1, 0, 0]
    assert values["hit@3"].tolist() == [1, 1, 0, 1]
    # NDCG of one positive at rank r is 1 / log2(r + 1)
    expected = [1 / math.log2(3), 1.0, 0.0, 1 / math.log2(4)]
    assert values["ndcg@3"] == pytest.approx(np.array(expected, dtype=np.float32))
    assert values["ndcg@1"].tolist() == [0, 1, 0, 0]
    assert values["ndcg@3"].dtype == np.float32


def test_metrics_needing_more_than_topk_are_skipped() -> None:
    assert set(per_user_metrics(np.array([[1, 1]]), ["NDCG", "AveragePopularity"], [1])) == {
        "ndcg@1"
    }


def test_recorder_matches_rows_to_users() -> None:
    recorder = PerUserRecorder("user_id")
    recorder.record_batch(2, np.array([5, 5, 5, 9, 9, 9]))  # sampled: each user's rows together
    recorder.record_batch(1, np.array([7]))  # full ranking: one row per user
    recorder.record_struct({"rec.topk": _Tensor(np.array([[1, 1], [0, 1], [1, 1]]))})
    result = recorder.result(["Hit"], [1], lambda ids: np.array([f"u{i}" for i in ids]))
    assert (result.users.tolist() == ["u5", "u9", "u7"]
            and result.values["hit@1"].tolist() == [1, 0, 1])
    # cannot be matched: no result rather than a wrong one
    recorder.record_batch(3, np.array([1, 2]))
    recorder.record_struct({"rec.topk": _Tensor(np.array([[1, 1], [0, 1], [1, 1]]))})
    assert recorder.result(["Hit"], [1], str) is None


class _Tensor:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def cpu(self) -> _Tensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.array


def test_save_and_load_round_trip(tmp_path) -> None:
    data = PerUser(np.array(["10", "2"]), {"ndcg@10": np.array([0.5, 0.0], dtype=np.float32)})
    path = per_user.save(tmp_path / "a" / "b.npz", data)
    back = per_user.load(path)
    assert back.users.tolist() == ["10", "2"] and back.values["ndcg@10"].tolist() == [0.5, 0.0]
    np.savez(tmp_path / "bad.npz", ndcg=np.zeros(2))
    with pytest.raises(ValueError, match="bad.npz: not a per-user metrics file"):
        per_user.load(tmp_path / "bad.npz")


@pytest.mark.parametrize(
    ("model", "mode"), [("SASRec", "full"), ("SASRec", "uni20"), ("GRU4Rec", "uni20")]
)
def test_run_writes_per_user_metrics_whose_mean_is_the_reported_metric(tiny_data, model, mode):
    eval_args = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": mode}
    extra = {"train_neg_sample_args": None} if model == "GRU4Rec" else {}  # RecBole's, CE
    config = fast_config(
        tiny_data, eval_args=eval_args, per_user_file="per_user/run.npz", topk=[5, 10],
        metrics=["Hit", "NDCG", "MRR"], **extra
    )
    summary = run(model, "tiny", config_dict=config)
    assert summary.per_user_file == "per_user/run.npz"
    data = per_user.load(summary.per_user_file)
    assert sorted(data.values) == ["hit@10", "hit@5", "mrr@10", "mrr@5", "ndcg@10", "ndcg@5"]
    # every test user once (tiny: 40 users; users with < 3 interactions have no test row)
    assert len(set(data.users.tolist())) == len(data.users) > 30
    for metric, values in data.values.items():
        assert round(float(values.astype(np.float64).mean()), 4) == summary.test_result[metric]
    assert summary.stopped_by == "epoch_cap"  # 2 epochs, stopping_step 10


def test_early_stopping_is_reported(tiny_data):
    config = fast_config(tiny_data, epochs=50, stopping_step=1, learning_rate=0.0001)
    summary = run("SASRec", "tiny", config_dict=config)
    assert summary.stopped_by == "early_stopping" and summary.epochs < 50
    assert summary.per_user_file is None  # not asked for
