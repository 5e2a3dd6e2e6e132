"""Device-resident training batches, the sync-free epoch with its divergence check, the large-batch
recipe and the fast evaluation paths (identical metrics to RecBole's)."""

from pathlib import Path

import pytest
import torch
from conftest import fast_config
from recbole.trainer import Trainer

from recbole_sasrec_ext import Config, PluginError, run
from recbole_sasrec_ext.apps.cli import EXIT_DIVERGED, main
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.common.errors import TrainingDivergedError
from recbole_sasrec_ext.data.device_loader import DeviceTrainDataLoader
from recbole_sasrec_ext.training.lr_schedule import (
    LrScaling,
    LrSchedule,
    make_schedule,
    scaled_learning_rate,
)
from recbole_sasrec_ext.training.registry import get_trainer
from recbole_sasrec_ext.training.sequence_scoring import sequence_scorer
from recbole_sasrec_ext.training.trainer import PluginTrainer


@pytest.fixture(autouse=True)
def _no_anomaly_mode():
    """Importing RecBole's SINE switches autograd anomaly detection on for the whole process
    (recbole/model/sequential_recommender/sine.py); training here must not depend on it."""
    torch.autograd.set_detect_anomaly(False)


def _build(tiny_data, model="SASRec", **extra):
    config = Config(model, "tiny", config_dict=fast_config(tiny_data, **extra))
    return (config, *build(config))


# --- the loader ------------------------------------------------------------------------------
def test_loader_yields_device_tensors_and_an_epoch_covers_every_row_once(tiny_data):
    config, _, train, *_ = _build(tiny_data, train_batch_size=7)
    assert isinstance(train, DeviceTrainDataLoader)
    users = []
    batches = list(train)
    assert len(batches) == len(train) == -(-train.sample_size // 7)
    for batch in batches:
        for field in batch.columns:
            assert batch[field].device == torch.device(config["device"])
        users.append(batch["user_id"])
    users = torch.cat(users)
    expected = train._dataset.inter_feat["user_id"]
    assert len(users) == len(expected)  # no row twice, none missing (one training row per user)
    assert torch.equal(users.sort().values, expected.sort().values)
    assert not torch.equal(users, expected)  # shuffled


def test_loader_batches_equal_recbole_loader_batches(tiny_data):
    """Same seed: the device loader yields RecBole's batches, in RecBole's order,
    epoch after epoch."""
    _, _, device_train, *_ = _build(tiny_data, train_batch_size=8, seed=3, length_buckets=0)
    _, _, host_train, *_ = _build(tiny_data, train_batch_size=8, seed=3, device_train_loader=False)
    assert not isinstance(host_train, DeviceTrainDataLoader)
    for _ in range(3):
        device_batches, host_batches = list(device_train), list(host_train)
        assert len(device_batches) == len(host_batches)
        for a, b in zip(device_batches, host_batches):
            assert set(a.columns) == set(b.columns)
            for field in a.columns:
                assert torch.equal(a[field], b[field]), field


def test_length_buckets_cover_every_row_once_with_less_padding(tiny_data):
    config, _, train, *_ = _build(tiny_data, train_batch_size=4, length_buckets=4, seed=1)
    _, _, plain, *_ = _build(tiny_data, train_batch_size=4, length_buckets=0, seed=1)
    field = config["ITEM_LIST_LENGTH_FIELD"]
    batches = list(train)

    seq_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]

    def rows(loader_batches):  # every training row, as sorted tuples
        return sorted(tuple(r) for b in loader_batches for r in b[seq_field].tolist())

    assert len(rows(batches)) == train.sample_size
    assert rows(batches) == rows(list(plain))  # the same rows as RecBole's batches, each once
    widest = [int(b[field].max()) for b in batches]
    plain_widest = [int(b[field].max()) for b in plain]
    assert sum(widest) < sum(plain_widest)  # similar lengths together: less padding per batch
    spread = [int(b[field].max() - b[field].min()) for b in batches]
    plain_spread = [int(b[field].max() - b[field].min()) for b in plain]
    assert sum(spread) < sum(plain_spread)
    assert [int(b[field].max()) for b in train] != widest  # a new grouping every epoch
    sizes = [len(b) for b in batches]
    assert len(set(sizes)) > 1 and max(sizes) > 4  # many short rows or a few long ones
    # a group is cut by targets, not by rows: 4 batches of about 74 / 4 targets each
    group = torch.tensor([1, 1, 1, 2, 2, 2, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7])  # (16,) sorted
    assert train._balanced_sizes(group) == [7, 3, 3, 3]  # targets 15, 18, 19, 21 of 73


def test_trimmed_batch_gives_the_same_loss_and_scores(tiny_data):
    """Cutting a batch after its longest sequence changes nothing at the valid positions (garbage
    written into the cut-off padding columns included)."""
    config, _, train, valid, _, model = _build(tiny_data, length_buckets=0,
                                               MAX_ITEM_LIST_LENGTH=10)
    model.eval()
    lengths = train.rows()[model.ITEM_SEQ_LEN]  # (rows,)
    batch = train.batch_of(lengths.argsort()[:5])  # the five shortest rows
    seq = batch[model.ITEM_SEQ]
    width = int(batch[model.ITEM_SEQ_LEN].max())
    assert width < seq.size(1)  # the case under test: padding-only columns exist
    trimmed = model.trimmed(batch)
    assert trimmed[model.ITEM_SEQ].size(1) == width
    with torch.no_grad():
        full_hidden = model.forward(batch)  # (B, L, d)
        cut_hidden = model.forward(trimmed)  # (B, width, d)
        valid_pos = seq[:, :width] > 0  # (B, width)
        torch.testing.assert_close(cut_hidden[valid_pos], full_hidden[:, :width][valid_pos])
        loss = model.calculate_loss(batch)
        garbage = batch[model.ITEM_SEQ].clone()
        garbage[:, width:] = 1 + torch.arange(garbage[:, width:].numel()).view(
            garbage[:, width:].shape) % (model.n_items - 1)
        batch.interaction[model.ITEM_SEQ] = garbage  # garbage beyond every sequence's length
        torch.testing.assert_close(model.calculate_loss(batch), loss)
        eval_batch = next(iter(valid))[0]
        scores = model.full_sort_predict(eval_batch)  # (B, n_items), trimmed inside
        hidden = model.forward(eval_batch)  # (B, L, d), untrimmed
        last = hidden[torch.arange(len(hidden)), eval_batch[model.ITEM_SEQ_LEN] - 1]  # (B, d)
        torch.testing.assert_close(scores, last @ model.embedding.item.weight.T)


def test_recbole_models_keep_recbole_loader(tiny_data):
    *_, train, _, _, _ = _build(tiny_data, model="GRU4Rec")
    assert not isinstance(train, DeviceTrainDataLoader)


def test_same_seed_same_run_exactly(tiny_data):
    a = run("SASRec", "tiny", config_dict=fast_config(tiny_data, epochs=3, seed=5), saved=False)
    b = run("SASRec", "tiny", config_dict=fast_config(tiny_data, epochs=3, seed=5), saved=False)
    assert [h.valid_result for h in a.valid_history] == [h.valid_result for h in b.valid_history]
    assert a.test_result == b.test_result


# --- divergence --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "lr, message",
    [
        ("1e30", "training diverged at epoch 0: mean training loss nan is not finite"),
        ("1e6", "training diverged at epoch 0: mean training loss nan is not finite"),
        ("1e3", "training diverged at epoch 0: mean training loss 3.91071e+06 "
                "exceeds the divergence bound 164.069"),
    ],
)
def test_divergence_exits_3_without_result_or_checkpoint(tiny_data, tmp_path, capsys, lr, message):
    argv = ["--model", "SASRec", "--dataset", "tiny", f"--data_path={tiny_data}", "--epochs=4",
            "--MAX_ITEM_LIST_LENGTH=10", "--train_batch_size=16", "--hidden_size=16",
            "--inner_size=16",
            "--state=WARNING", "--show_progress=False", "--loss_type=BCE", "--train_stride=0",
            "--recipe=paper", f"--learning_rate={lr}"]
    assert main(argv) == EXIT_DIVERGED == 3
    out, err = capsys.readouterr()
    assert out.strip() == ""  # no result JSON
    assert err.strip().splitlines()[-1] == f"error: {message}"
    assert list(Path(tmp_path).rglob("*.pth")) == []


def test_divergence_after_a_saved_checkpoint_deletes_it(tiny_data):
    """One batch per epoch: epoch 0 validates and saves, then the learning rate becomes 1e30 and
    epoch 1 diverges. (Since issue 22 a one-batch epoch is also checked after its step, so a
    learning rate of 1e30 from the start now stops epoch 0.)"""
    config, _, train, valid, _, model = _build(tiny_data, train_batch_size=1000, epochs=3)
    trainer = PluginTrainer(config, model)
    saved = []

    def after_epoch(epoch, score):
        saved.append(Path(trainer.saved_model_file).exists())
        for group in trainer.optimizer.param_groups:
            group["lr"] = 1e30

    with pytest.raises(TrainingDivergedError) as info:
        trainer.fit(train, valid, saved=True, callback_fn=after_epoch)
    assert saved == [True] and info.value.epoch == 1
    assert not Path(trainer.saved_model_file).exists()


def test_divergence_bound_is_factor_times_first_batch_loss(tiny_data):
    config, *_, model = _build(tiny_data, divergence_factor=2.0)
    trainer = PluginTrainer(config, model)
    trainer._check_divergence(0, 3.0, 2.0)  # the first batch loss 2.0 becomes the reference
    trainer._check_divergence(1, 3.9, 50.0)  # later first batches do not move it
    with pytest.raises(TrainingDivergedError,
                       match="epoch 2: mean training loss 4.5 exceeds the divergence bound 4"):
        trainer._check_divergence(2, 4.5, 1.0)
    off = PluginTrainer(
        Config("SASRec", "tiny", config_dict=fast_config(tiny_data, divergence_factor=None)), model
    )
    off._check_divergence(0, 1.0, 1.0)
    off._check_divergence(1, 1e30, 1.0)  # bound off: only non-finite losses stop a run
    with pytest.raises(TrainingDivergedError, match="inf is not finite"):
        off._check_divergence(2, float("inf"), 1.0)


def test_epoch_returns_the_sum_of_batch_losses(tiny_data):
    """The loss read once per epoch equals RecBole's per-batch ``.item()`` sum (same RNG)."""
    config, _, train, *_, model = _build(tiny_data, train_batch_size=8, adam_betas=None)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    ours = PluginTrainer(config, model)._train_epoch(train, 0)
    model.load_state_dict(state)
    train.generator.manual_seed(config["seed"])  # replay the same permutation
    torch.manual_seed(1)
    theirs = Trainer(config, model)._train_epoch(train, 0)
    assert ours == theirs


# --- large-batch recipe -------------------------------------------------------------------------
def test_lr_scaling_and_warmup_values():
    assert scaled_learning_rate(1e-3, LrScaling.NONE, 512, 128) == 1e-3
    assert scaled_learning_rate(1e-3, LrScaling.SQRT, 512, 128) == pytest.approx(2e-3)
    assert scaled_learning_rate(1e-3, LrScaling.LINEAR, 512, 128) == pytest.approx(4e-3)
    schedule = make_schedule(1e-3, LrScaling.LINEAR, 256, 128, 0.5, 10)
    assert schedule == LrSchedule(peak_lr=2e-3, warmup_steps=5)
    assert [schedule.lr_at(s) for s in (0, 4, 5, 100)] == pytest.approx([4e-4, 2e-3, 2e-3, 2e-3])


def test_trainer_applies_scaled_lr_and_warmup(tiny_data):
    config, _, train, *_, model = _build(
        tiny_data, train_batch_size=8, learning_rate=0.01, lr_scaling="sqrt", lr_base_batch_size=2,
        warmup_epochs=1.0,
    )
    trainer = PluginTrainer(config, model)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.02)
    seen = []
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: (
        seen.append(trainer.optimizer.param_groups[0]["lr"]), step(*a, **k)
    )[1]
    trainer._train_epoch(train, 0)
    n = len(train)
    assert seen == pytest.approx([0.02 * (i + 1) / n for i in range(n)])


def test_bad_lr_scaling_is_a_config_error(tiny_data):
    with pytest.raises(PluginError, match="config key 'lr_scaling' = 'cubic' is not allowed"):
        Config("SASRec", "tiny", config_dict=fast_config(tiny_data, lr_scaling="cubic"))


# --- fast evaluation: identical metrics to RecBole's trainer ------------------------------------
def _evaluate_both(config, model, data):
    model.eval()
    ours = PluginTrainer(config, model).evaluate(data, load_best_model=False)
    theirs = Trainer(config, model).evaluate(data, load_best_model=False)
    return dict(ours), dict(theirs)


@pytest.mark.parametrize("model_name", ["SASRec", "RecBole.SASRec", "GRU4Rec", "Caser"])
def test_sampled_evaluation_equals_recbole_per_candidate_path(tiny_data, model_name):
    extra = {"MAX_ITEM_LIST_LENGTH": 5} if model_name == "Caser" else {}
    config, _, _, valid, test, model = _build(
        tiny_data, model=model_name, eval_args={"split": {"LS": "valid_and_test"}, "order": "TO",
                                                "group_by": "user", "mode": "uni10"},
        metrics=["Hit", "NDCG", "MRR"], topk=[1, 5, 10], eval_batch_size=55, **extra,
    )
    assert sequence_scorer(model) is not None
    for data in (valid, test):
        ours, theirs = _evaluate_both(config, model, data)
        assert ours == theirs


def test_full_ranking_equals_recbole(tiny_data):
    config, _, _, _, test, model = _build(
        tiny_data,
        eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user",
                   "mode": "full"},
        topk=[1, 5, 10],
    )
    ours, theirs = _evaluate_both(config, model, test)
    assert ours == theirs


def test_full_sort_scores_is_the_unmasked_score_matrix(tiny_data):
    config, _, _, _, test, model = _build(
        tiny_data,
        eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user",
                   "mode": "full"},
    )
    model.eval()
    trainer = PluginTrainer(config, model)
    trainer.tot_item_num = test._dataset.item_num
    interaction = next(iter(test))[0]
    scores = trainer._full_sort_scores(interaction)
    assert scores.shape == (len(interaction), test._dataset.item_num)
    assert torch.equal(scores, model.full_sort_predict(interaction))
    masked = trainer._mask_full_sort_scores(scores.clone(), None)
    assert torch.isinf(masked[:, 0]).all() and torch.equal(masked[:, 1:], scores[:, 1:])


def test_scorer_refuses_a_subclass_that_changes_predict(tiny_data):
    config, _, train, *_ , model = _build(tiny_data, model="GRU4Rec")
    cls = type(model)
    changed = type("Changed", (cls,), {
        "predict": lambda self, interaction: cls.predict(self, interaction) * 2
    })
    assert sequence_scorer(model) is not None
    assert sequence_scorer(changed(config, train._dataset)) is None


def test_registry_gives_plugin_trainer_to_recbole_sequential_models():
    from recbole.utils import ModelType

    assert get_trainer(ModelType.SEQUENTIAL, "GRU4Rec") is PluginTrainer
