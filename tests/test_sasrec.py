"""The plugin's SASRec: causality, padding invariance, seeded determinism, scoring."""

import pytest
import torch
from conftest import fast_config
from recbole.data.interaction import Interaction

from recbole_sasrec_ext import Config
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.data import TARGET_LIST_FIELD
from recbole_sasrec_ext.layers.losses import LossType


def _model(tiny_data, **extra):
    config = Config("SASRec", "tiny", config_dict=fast_config(tiny_data, **extra))
    return build(config)


def _batch(seq, length, user=None):
    seq = torch.as_tensor(seq)
    inter = {"item_id_list": seq, "item_length": torch.tensor(length)}
    if user is not None:
        inter["user_id"] = torch.tensor(user)
    return Interaction(inter)


@pytest.mark.parametrize("layer_norm", ["pre", "post"])
def test_causality(tiny_data, layer_norm):
    *_, model = _model(tiny_data, layer_norm=layer_norm)
    model.eval()
    a = _batch([[3, 5, 7, 9, 2, 4, 0, 0, 0, 0]], [6])
    b = _batch([[3, 5, 7, 11, 12, 13, 0, 0, 0, 0]], [6])
    ha, hb = model(a), model(b)
    assert torch.allclose(ha[0, :3], hb[0, :3], atol=1e-6)
    assert not torch.allclose(ha[0, 3], hb[0, 3])


@pytest.mark.parametrize(
    "model_name, options",
    [
        ("SASRec", {"layer_norm": "pre"}),
        ("SASRec", {"layer_norm": "post"}),
        ("RKSA", {"layer_norm": "pre"}),
        ("RKSA", {"layer_norm": "pre", "kernel_sharing": "shared"}),
    ],
)
def test_padding_invariance(tiny_data, model_name, options):
    """Items beyond each sequence's length (real item ids, not padding) change nothing the model
    outputs for the valid positions, nor the sequence representation, nor the scores."""
    config = Config(model_name, "tiny", config_dict=fast_config(tiny_data, **options))
    *_, model = build(config)
    model.eval()
    lengths = [3, 6, 1]
    clean = torch.tensor(
        [
            [3, 5, 7, 0, 0, 0, 0, 0, 0, 0],
            [2, 4, 6, 8, 1, 3, 0, 0, 0, 0],
            [9, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    generator = torch.Generator().manual_seed(0)
    garbage = torch.randint(1, model.n_items, clean.shape, generator=generator)  # real items
    beyond = torch.arange(clean.size(1)) >= torch.tensor(lengths)[:, None]  # (B, L)
    dirty = torch.where(beyond, garbage, clean)
    assert (dirty[beyond] > 0).all() and not torch.equal(dirty, clean)
    users = [1, 2, 3]
    hidden_clean = model(_batch(clean, lengths, users))  # (B, L, d)
    hidden_dirty = model(_batch(dirty, lengths, users))  # (B, L, d)
    for row, n in enumerate(lengths):
        assert torch.allclose(hidden_clean[row, :n], hidden_dirty[row, :n], atol=1e-5)
    scores = [model.full_sort_predict(_batch(seq, lengths, users)) for seq in (clean, dirty)]
    assert torch.allclose(scores[0], scores[1], atol=1e-5)
    window = model.encode_sequences(_batch(clean[:1], lengths[:1], users[:1]))
    shorter_window = model.encode_sequences(_batch(clean[:1, :5], lengths[:1], users[:1]))
    assert torch.allclose(window, shorter_window, atol=1e-6)
    # padding id embeds to zero
    assert torch.count_nonzero(model.embedding.item.weight[0]) == 0


def test_same_seed_same_loss_and_predictions(tiny_data):
    losses = []
    for _ in range(2):
        _, train, _, test, model = _model(tiny_data, seed=7)
        batch = next(iter(train))
        model.train()
        torch.manual_seed(0)
        losses.append(model.calculate_loss(batch).item())
    assert losses[0] == losses[1]
    _, train, _, _, other = _model(tiny_data, seed=8)
    torch.manual_seed(0)
    assert other.calculate_loss(next(iter(train))).item() != losses[0]


def test_full_sort_equals_predict(tiny_data):
    *_, model = _model(tiny_data)
    model.eval()
    batch = _batch([[3, 5, 7, 0, 0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0, 0, 0, 0]], [3, 2])
    full = model.full_sort_predict(batch)
    assert full.shape == (2, model.n_items)
    batch.update(Interaction({"item_id": torch.tensor([4, 6])}))
    assert torch.allclose(model.predict(batch), full[[0, 1], [4, 6]], atol=1e-5)


@pytest.mark.parametrize("loss_type", ["BCE", "CE", "SAMPLED_SOFTMAX", "GBCE"])
def test_every_loss_trains(tiny_data, loss_type):
    _, train, _, _, model = _model(tiny_data, loss_type=loss_type, n_negatives=5)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    batch = next(iter(train))
    assert (batch[TARGET_LIST_FIELD] > 0).sum() > 0
    first = None
    for _ in range(30):
        opt.zero_grad()
        torch.manual_seed(0)
        loss = model.calculate_loss(batch)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first


def test_bf16_autocast_stays_close_to_float32(tiny_data):
    *_, model = _model(tiny_data)
    model.eval()
    batch = _batch([[3, 5, 7, 9, 2, 4, 0, 0, 0, 0]], [6])
    full = model.full_sort_predict(batch)
    model.bf16 = True
    half = model.full_sort_predict(batch)
    assert half.dtype == torch.float32
    assert not torch.equal(full, half)  # autocast really ran in bfloat16
    assert torch.allclose(full, half, atol=0.05 * full.abs().max().item())


@pytest.mark.parametrize(
    "model_name, options, expected",
    [
        ("SASRec", {}, 1.7048261165618896),
        ("RKSA", {}, 1.5107892751693726),
        ("RKSA", {"kernel_sharing": "shared"}, 1.510162353515625),
    ],
)
def test_exact_first_loss_for_a_seed(tiny_data, model_name, options, expected):
    """Pinned on torch 2.13.0 CPU: the data pipeline, initialisation and loss are deterministic."""
    # the paper's model, loss and rows
    cfg = fast_config(tiny_data, seed=7, loss_type="BCE", train_stride=0, recipe="paper", **options)
    _, train, _, _, model = build(Config(model_name, "tiny", config_dict=cfg))
    torch.manual_seed(0)
    assert model.calculate_loss(next(iter(train))).item() == pytest.approx(expected, rel=1e-5)


def test_negatives_per_sequence_trains_and_exclusion_needs_it(tiny_data):
    from recbole_sasrec_ext import PluginError, run

    settings = {"loss_type": "SAMPLED_SOFTMAX", "n_negatives": 5, "negatives_per": "sequence",
                "exclude_own_negatives": True, "epochs": 1}
    summary = run("SASRec", "tiny", config_dict=fast_config(tiny_data, **settings))
    assert summary.epochs == 1 and summary.test_result
    with pytest.raises(PluginError, match="'exclude_own_negatives' = True needs 'negatives_per' = "
                                          "'sequence', not 'batch'"):
        Config("SASRec", "tiny", config_dict=fast_config(
            tiny_data, **{**settings, "negatives_per": "batch"}))


def test_ce_excluding_own_items_drops_them_from_each_softmax(tiny_data):
    """``exclude_own_negatives`` with CE (any ``negatives_per``): the same network's loss on the
    same batch is lower (fewer items in each softmax), equal to a hand-masked full softmax."""
    import torch.nn.functional as F

    from recbole_sasrec_ext.data.full_sequence_dataset import TARGET_LIST_FIELD

    cfg = fast_config(tiny_data, loss_type="CE", exclude_own_negatives=True, seed=3)
    _, train, _, _, model = build(Config("SASRec", "tiny", config_dict=cfg))
    model.eval()
    batch = next(iter(train))
    with torch.no_grad():
        excluded = model.calculate_loss(batch).item()
        model.exclude_own_negatives = False
        plain = model.calculate_loss(batch).item()
        hidden = model(model.trimmed(batch))  # (B, L, d)
    batch = model.trimmed(batch)
    targets, seq = batch[TARGET_LIST_FIELD], batch["item_id_list"]  # (B, L) each
    logits = hidden @ model.embedding.item.weight[1:].T  # (B, L, V)
    own = torch.zeros(seq.size(0), logits.size(-1), dtype=torch.bool)  # (B, V)
    for r in range(seq.size(0)):
        items = torch.cat([seq[r], targets[r]])
        own[r, items[items > 0] - 1] = True
    drop = own[:, None, :].expand_as(logits).clone()  # (B, L, V)
    mask = targets > 0  # (B, L)
    drop[mask, targets[mask] - 1] = False  # never the position's own target
    expected = F.cross_entropy(logits.masked_fill(drop, float("-inf"))[mask], targets[mask] - 1)
    assert excluded == pytest.approx(expected.item(), rel=1e-5)
    assert excluded < plain


def test_label_smoothing_is_the_models_ce_loss_and_ignored_by_bce(tiny_data):
    """``label_smoothing`` reaches the model's CE loss (equal to torch's smoothed cross-entropy of
    the same hidden states); BCE, which has no softmax label, trains with it set (the recipe sets
    it, a user who picks BCE must not have to unset it) to the same loss as without it."""
    import torch.nn.functional as F

    cfg = fast_config(tiny_data, loss_type="CE", label_smoothing=0.2, seed=3)
    _, train, _, _, model = build(Config("SASRec", "tiny", config_dict=cfg))
    model.eval()
    batch = model.trimmed(next(iter(train)))
    with torch.no_grad():
        got = model.calculate_loss(batch).item()
        hidden = model(batch)  # (B, L, d)
    targets = batch[TARGET_LIST_FIELD]  # (B, L)
    mask = targets > 0  # (B, L)
    logits = hidden[mask] @ model.embedding.item.weight[1:].T  # (N, V)
    expected = F.cross_entropy(logits, targets[mask] - 1, label_smoothing=0.2)
    assert got == pytest.approx(expected.item(), rel=1e-5)
    assert got != pytest.approx(F.cross_entropy(logits, targets[mask] - 1).item(), rel=1e-4)
    with torch.no_grad():
        model.loss_type = LossType.BCE
        torch.manual_seed(0)
        bce_smoothed = model.calculate_loss(batch).item()
        model.label_smoothing = 0.0
        torch.manual_seed(0)
        assert model.calculate_loss(batch).item() == bce_smoothed
