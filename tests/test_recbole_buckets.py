"""``length_buckets`` and ``length_split`` for RecBole's own GRU4Rec and SASRec (``length_split``
for BERT4Rec too, after its mask transform): their prefix rows batched by length, or RecBole's
random batches computed in parts of similar length, each cut after its longest sequence. Cutting
changes nothing they compute (garbage in the cut-off columns
included); the parts of a split batch give the batch's loss and gradient; every row is still
trained once per epoch; other models refuse the keys with one line."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import fast_config
from recbole.data.interaction import Interaction

from recbole_sasrec_ext import Config, PluginError
from recbole_sasrec_ext.apps.cli import main
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.data.device_loader import DeviceTrainDataLoader, length_class_rows
from recbole_sasrec_ext.training.trainer import PluginTrainer

MODELS = ("GRU4Rec", "RecBole.SASRec")


@pytest.fixture(autouse=True)
def _no_anomaly_mode():
    torch.autograd.set_detect_anomaly(False)  # RecBole's sine.py switches it on at import


def _build(tiny_data, model, **extra):
    settings = {"train_neg_sample_args": None, "MAX_ITEM_LIST_LENGTH": 12, **extra}
    config = Config(model, "tiny", config_dict=fast_config(tiny_data, **settings))
    return (config, *build(config))


@pytest.mark.parametrize("model_name", MODELS)
def test_cut_batch_gives_the_same_loss_as_the_padded_batch_with_garbage(tiny_data, model_name):
    config, _, train, _, _, model = _build(tiny_data, model_name, length_buckets=2)
    assert isinstance(train, DeviceTrainDataLoader)
    model.eval()  # no dropout: the two losses see the same network
    seq_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    len_field = config["ITEM_LIST_LENGTH_FIELD"]
    rows = train.rows()
    index = rows[len_field].argsort()[:6]  # (6,) the shortest rows: the cut drops columns
    cut = train.batch_of(index)
    width = int(cut[len_field].max())
    assert cut[seq_field].size(1) == width < rows[seq_field].size(1)
    padded = {f: v.index_select(0, index).clone() for f, v in rows.items()}
    seq = padded[seq_field]  # (6, L) right-padded
    assert torch.equal(seq[:, :width], cut[seq_field])
    after = torch.arange(seq.size(1)) >= padded[len_field].unsqueeze(1)  # (6, L) past the length
    garbage = 1 + torch.arange(seq.numel()).view(seq.shape) % (model.n_items - 1)  # (6, L)
    seq[after] = garbage[after]  # real item ids where padding was
    with torch.no_grad():
        torch.testing.assert_close(model.calculate_loss(cut),
                                   model.calculate_loss(Interaction(padded)))


@pytest.mark.parametrize("model_name", MODELS)
def test_buckets_train_every_prefix_row_once_in_batches_of_similar_length(tiny_data, model_name):
    config, _, train, *_ = _build(tiny_data, model_name, length_buckets=3, train_batch_size=8)
    len_field = config["ITEM_LIST_LENGTH_FIELD"]
    batches = list(train)
    users = torch.cat([b[config["USER_ID_FIELD"]] for b in batches])
    targets = torch.cat([b[config["ITEM_ID_FIELD"]] for b in batches])
    rows = train.rows()
    assert sorted(zip(users.tolist(), targets.tolist())) == sorted(
        zip(rows[config["USER_ID_FIELD"]].tolist(), rows[config["ITEM_ID_FIELD"]].tolist()))
    # one target per row: equal batch sizes inside a group (not cut by sequence length)
    assert max(len(b) for b in batches) == 8
    assert sum(len(b) == 8 for b in batches) >= len(batches) - 3
    _, _, plain, *_ = _build(tiny_data, model_name, train_batch_size=8)
    assert not isinstance(plain, DeviceTrainDataLoader)  # default: RecBole's own loader
    width = sum(int(b[len_field].max()) for b in batches)
    plain_width = sum(int(b[len_field].max()) for b in plain)
    assert width < plain_width


def test_buckets_train_recbole_gru4rec_end_to_end(tiny_data, capsys):
    code = main(["--model", "GRU4Rec", "--dataset", "tiny", f"--data_path={tiny_data}",
                 "--length_buckets=2", "--epochs=2", "--train_neg_sample_args=None",
                 "--MAX_ITEM_LIST_LENGTH=12", "--state=ERROR", "--show_progress=False"])
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("model_name", ["Caser", "BERT4Rec"])
def test_other_recbole_models_refuse_length_buckets(tiny_data, model_name, capsys):
    with pytest.raises(PluginError, match="'length_buckets' = 4 is not available for RecBole's"):
        Config(model_name, "tiny", config_dict=fast_config(tiny_data, length_buckets=4))
    code = main(["--model", model_name, "--dataset", "tiny", f"--data_path={tiny_data}",
                 "--length_buckets=4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "length_buckets" in err[0]


# --- length_split: RecBole's batches, computed in parts ----------------------------------------
SPLIT_MODELS = (*MODELS, "BERT4Rec")
NO_DROPOUT = {"GRU4Rec": {"dropout_prob": 0.0},
              "RecBole.SASRec": {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0},
              "BERT4Rec": {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}}


def _garbage_after_length(batch: Interaction, seq_field: str, len_field: str, n_items: int):
    """``batch`` with real item ids in every position past each row's length."""
    rows = {f: batch[f].clone() for f in batch.interaction}
    seq = rows[seq_field]  # (k, L)
    after = torch.arange(seq.size(1)) >= rows[len_field].unsqueeze(1)  # (k, L)
    garbage = 1 + torch.arange(seq.numel()).view(seq.shape) % (n_items - 1)  # (k, L)
    seq[after] = garbage[after]
    return Interaction(rows)


def _padded_with_garbage(batch: Interaction, config, n_items: int, garbage: bool = True):
    """``batch`` with every item list (the mask transform's masked list too) widened back to
    ``MAX_ITEM_LIST_LENGTH`` and real item ids (``garbage``, else the padding id 0) in every
    position past each row's length."""
    lengths = batch[config["ITEM_LIST_LENGTH_FIELD"]]  # (k,)
    width = config["MAX_ITEM_LIST_LENGTH"]
    rows = {}
    for field in batch.interaction:
        values = batch[field]
        if field.endswith(config["LIST_SUFFIX"]) and values.dim() == 2:
            padded = torch.zeros(len(values), width, dtype=values.dtype)  # (k, L)
            padded[:, :values.size(1)] = values
            after = torch.arange(width) >= lengths.unsqueeze(1)  # (k, L) past the length
            ids = 1 + torch.arange(padded.numel()).view(padded.shape) % (n_items - 1)  # (k, L)
            padded[after] = ids[after].to(values.dtype) if garbage else 0
            values = padded
        rows[field] = values
    return Interaction(rows)


def _targets(rows: Interaction) -> torch.Tensor:
    """The training targets of each row (k,): masked positions under BERT4Rec's transform
    (its loss reads slots with an index > 0), else one."""
    if "MASK_INDEX" in rows:
        return (rows["MASK_INDEX"] > 0).sum(1)
    return torch.ones(len(rows), dtype=torch.long)


@pytest.mark.parametrize("model_name", SPLIT_MODELS)
def test_split_batch_parts_give_the_whole_batch_loss_and_gradient(tiny_data, model_name):
    config, _, train, _, _, model = _build(tiny_data, model_name, length_split=True,
                                           train_batch_size=64)
    assert isinstance(train, DeviceTrainDataLoader)
    model.eval()  # no dropout: the parts and the whole batch see the same network
    seq_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    len_field = config["ITEM_LIST_LENGTH_FIELD"]
    index = torch.arange(min(64, train.sample_size))  # (k,) rows of all lengths
    batch = train.batch_of(index)
    parts = train.length_parts(batch)
    assert len(parts) >= 3
    targets = _targets(batch)  # (k,)
    assert bool((targets == 0).any()) == (model_name == "BERT4Rec")  # rows with nothing masked
    trained = [rows for rows in length_class_rows(batch[len_field]) if int(targets[rows].sum())]
    if model_name == "BERT4Rec":  # RecBole's loss never reads a mask at position 0
        assert len(trained) < len(length_class_rows(batch[len_field]))
    assert sum(len(p.rows) for p in parts) == sum(len(rows) for rows in trained)
    assert sum(p.share for p in parts) == pytest.approx(1.0)
    for part in parts:  # no part is more than half padding: width <= 2 x its shortest sequence
        lengths = part.rows[len_field]
        assert part.rows[seq_field].size(1) == int(lengths.max()) <= 2 * int(lengths.min())
        assert part.share == int(_targets(part.rows).sum()) / int(targets.sum())
        if model_name == "BERT4Rec":  # the mask slots are cut before the first used one
            slots = part.rows["MASK_INDEX"]  # (k_c, s)
            assert bool((slots[:, 0] > 0).any())
    if model_name == "BERT4Rec":  # short parts use fewer slots than the batch's
        assert min(p.rows["MASK_INDEX"].size(1) for p in parts) < batch["MASK_INDEX"].size(1)

    # BERT4Rec reads padding as id 0 (RecBole masks its attention keys by id, not by length), so
    # its columns past the length stay 0: the check is that the parts drop them exactly
    whole = _padded_with_garbage(batch, config, model.n_items, garbage=model_name != "BERT4Rec")
    model.zero_grad()
    whole_loss = model.calculate_loss(whole)
    whole_loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    split_loss = 0.0
    for part in parts:
        loss = model.calculate_loss(part.rows) * part.share
        loss.backward()
        split_loss += float(loss.detach())
    assert split_loss == pytest.approx(float(whole_loss), rel=1e-5)
    for name, grad in expected.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad,
                                   rtol=1e-4, atol=1e-6)


def test_bert4rec_parts_with_several_mask_slots_compute(tiny_data):
    """With a longer window (mask_len = 0.2 x 30 = 6 slots) a part's slots are cut in the middle
    of the slot columns; RecBole's BERT4Rec reshapes them with ``view``, so they must come out
    contiguous (a Beauty run failed there before)."""
    config, _, train, _, _, model = _build(tiny_data, "BERT4Rec", length_split=True,
                                           train_batch_size=64, MAX_ITEM_LIST_LENGTH=30)
    batch = train.batch_of(torch.arange(min(64, train.sample_size)))
    parts = train.length_parts(batch)
    assert batch["MASK_INDEX"].size(1) == 6
    assert any(1 < p.rows["MASK_INDEX"].size(1) < 6 for p in parts)
    for part in parts:
        assert torch.isfinite(model.calculate_loss(part.rows))


def test_bert4rec_parts_without_masked_targets_are_left_out(tiny_data):
    """A length class in which the transform masked nothing adds nothing to BERT4Rec's loss (a
    mean over masked positions): it is not computed, and the other parts share the whole."""
    config, _, train, *_ = _build(tiny_data, "BERT4Rec", length_split=True, train_batch_size=64)
    batch = train.batch_of(torch.arange(min(64, train.sample_size)))
    rows = {f: batch[f].clone() for f in batch.interaction}
    short = rows[config["ITEM_LIST_LENGTH_FIELD"]] <= 2  # (k,) length classes 1 and 2
    assert 0 < int(short.sum()) < len(short)
    rows["MASK_INDEX"][short] = 0  # nothing trained in those rows
    parts = train.length_parts(Interaction(rows))
    assert sum(len(p.rows) for p in parts) == int((~short).sum())
    assert sum(p.share for p in parts) == pytest.approx(1.0)


@pytest.mark.parametrize("model_name", SPLIT_MODELS)
def test_an_epoch_with_length_split_trains_the_same_weights_as_recbole_batches(tiny_data,
                                                                               model_name):
    """Without dropout, one epoch through RecBole's loader and one with length_split (the same
    batches, in parts) end at the same weights."""
    weights = []
    for extra in ({}, {"length_split": True}):
        config, _, train, valid, _, model = _build(
            tiny_data, model_name, train_batch_size=16, seed=7, **NO_DROPOUT[model_name], **extra)
        assert isinstance(train, DeviceTrainDataLoader) == bool(extra)
        trainer = PluginTrainer(config, model)
        trainer._train_epoch(train, 0)
        weights.append({n: p.detach().clone() for n, p in model.named_parameters()})
    plain, split = weights
    for name in plain:
        torch.testing.assert_close(split[name], plain[name], rtol=1e-4, atol=1e-5)
    config, *_, fresh = _build(tiny_data, model_name, seed=7)
    moved = any(not torch.allclose(p, plain[n]) for n, p in fresh.named_parameters())
    assert moved  # the epoch did train


@pytest.mark.parametrize(("model_name", "extra", "says"), [
    ("Caser", {}, "not available for RecBole's Caser"),
    ("RKSA", {}, "not available for RKSA (its kernel loss is pooled"),
    ("Pop", {}, "not available for Pop"),
    ("GRU4Rec", {"loss_type": "BPR"}, "needs 'train_neg_sample_args' = None"),
    ("GRU4Rec", {"transform": "mask_itemseq"}, "cannot be combined with 'transform'"),
    ("BERT4Rec", {"transform": "None"}, "cannot be combined with 'transform' = None"),
])
def test_length_split_outside_its_models_is_one_line_exit_2(tiny_data, model_name, extra, says,
                                                            capsys):
    with pytest.raises(PluginError, match=re.escape(says)):
        Config(model_name, "tiny", config_dict=fast_config(tiny_data, length_split=True, **extra))
    code = main(["--model", model_name, "--dataset", "tiny", f"--data_path={tiny_data}",
                 "--length_split=True", *(f"--{k}={v}" for k, v in extra.items())])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0]


# --- length_split for the plugin's SASRec: one loss over all targets, encoded by length class ---
def test_plugin_sasrec_split_encoding_gives_the_same_loss_and_gradient(tiny_data):
    config, _, train, _, _, model = _build(tiny_data, "SASRec", length_split=True,
                                           MAX_ITEM_LIST_LENGTH=10, train_batch_size=64,
                                           train_stride=5)
    model.eval()  # no dropout: both ways see the same network
    batch = next(iter(train))
    seq_field, len_field = model.ITEM_SEQ, model.ITEM_SEQ_LEN
    lengths = batch[len_field]
    assert len(torch.unique(torch.ceil(torch.log2(lengths.double())))) >= 3  # several parts
    garbage = _garbage_after_length(batch, seq_field, len_field, model.n_items)
    split_hidden, _ = model.encode_by_length(garbage)  # (B, L, d)
    whole_hidden, _ = model.encode(garbage)  # (B, L, d)
    real = torch.arange(split_hidden.size(1)) < lengths.unsqueeze(1)  # (B, L)
    torch.testing.assert_close(split_hidden[real], whole_hidden[real], rtol=1e-5, atol=1e-6)

    grads = []
    for split in (True, False):
        model.length_split = split
        model.zero_grad()
        loss = model.calculate_loss(garbage)
        loss.backward()
        grads.append((float(loss), {n: p.grad.clone() for n, p in model.named_parameters()
                                    if p.grad is not None}))
    (split_loss, split_grads), (whole_loss, whole_grads) = grads
    assert split_loss == pytest.approx(whole_loss, rel=1e-5)
    assert split_grads.keys() == whole_grads.keys()
    for name, grad in whole_grads.items():
        torch.testing.assert_close(split_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_plugin_sasrec_epoch_with_length_split_trains_the_same_weights(tiny_data):
    weights = []
    for split in (False, True):
        config, _, train, _, _, model = _build(
            tiny_data, "SASRec", train_batch_size=16, seed=7, hidden_dropout_prob=0.0,
            attn_dropout_prob=0.0, length_split=split)
        PluginTrainer(config, model)._train_epoch(train, 0)
        weights.append({n: p.detach().clone() for n, p in model.named_parameters()})
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=1e-4, atol=1e-5)


def test_length_classes_are_powers_of_two_shortest_first():
    from recbole_sasrec_ext.data.device_loader import length_class_rows

    lengths = torch.tensor([5, 1, 2, 3, 4, 8, 9, 0, 50, 33, 32])
    parts = [index.tolist() for index in length_class_rows(lengths)]
    # classes: {0, 1} -> 1 item, {2} -> 2, {3, 4} -> 3-4, {5, 8} -> 5-8, {9} -> 9-16,
    # {32} -> 17-32, {33, 50} -> 33-64
    assert parts == [[1, 7], [2], [3, 4], [0, 5], [6], [10], [8, 9]]
