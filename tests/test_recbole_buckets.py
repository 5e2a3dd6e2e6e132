"""``length_buckets`` for RecBole's own GRU4Rec and SASRec: their prefix rows batched by length and
each batch cut after its longest sequence. Cutting changes nothing they compute (garbage in the
cut-off columns included); every row is still trained once per epoch; other RecBole models refuse
the key with one line."""

from __future__ import annotations

import pytest
import torch
from conftest import fast_config
from recbole.data.interaction import Interaction

from recbole_sasrec_ext import Config, PluginError
from recbole_sasrec_ext.apps.cli import main
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.data.device_loader import DeviceTrainDataLoader

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
