"""``output_embedding``: the item side of the scores (tied, tied plus a bias per item, untied),
checked against scores and a cross-entropy computed by hand, and refused by export."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, fast_config
from serving_bundle import train_tiny

from recbole_sasrec_ext import Config, PluginError
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.config.settings_hash import settings_hash
from recbole_sasrec_ext.data.full_sequence_dataset import TARGET_LIST_FIELD


def _built(tiny_data, model="SASRec", **extra):
    options = {"loss_type": "CE", "label_smoothing": 0.3, "length_split": False, **extra}
    config = Config(model, "tiny", config_dict=fast_config(tiny_data, **options))
    _, train, _, _, model = build(config)
    model.eval()  # no dropout: every number below is deterministic
    return model, next(iter(train))


def _hidden(model, batch):
    """Hidden states (N, d) and targets (N,) of the batch's real positions, and the model's
    auxiliary loss (RKSA's kernel loss; 0 for SASRec)."""
    batch = model.trimmed(batch)
    hidden, extras = model.encode(batch)  # (B, L, d)
    targets = batch[TARGET_LIST_FIELD]  # (B, L)
    mask = targets > 0  # (B, L)
    return hidden[mask], targets[mask], float(model.auxiliary_loss(extras))


def _ce_by_hand(logits, targets):
    """CE with label smoothing 0.3 over the real items (column 0, the padding id, left out)."""
    return F.cross_entropy(logits[:, 1:], targets - 1, label_smoothing=0.3)


@pytest.mark.parametrize("model_name", ["SASRec", "RKSA"])
def test_tied_bias_adds_one_bias_per_item_to_scores_and_loss(tiny_data, model_name):
    model, batch = _built(tiny_data, model_name, output_embedding="tied_bias")
    with torch.no_grad():
        model.output.bias.copy_(torch.linspace(-2.0, 3.0, model.n_items))  # (V,)
    table = model.embedding.item.weight  # (V, d)
    hidden, targets, auxiliary = _hidden(model, batch)  # (N, d), (N,), float
    logits = hidden @ table.T + model.output.bias  # (N, V)
    assert model.calculate_loss(batch).item() == pytest.approx(
        _ce_by_hand(logits, targets).item() + auxiliary, rel=1e-5)
    sequences = model.encode_sequences(batch)  # (B, d)
    scores = model.full_sort_predict(batch)  # (B, V)
    torch.testing.assert_close(scores, sequences @ table.T + model.output.bias)
    items = torch.arange(1, batch["item_id_list"].size(0) + 1)  # (B,)
    torch.testing.assert_close(model.score_candidates(sequences, items),
                               scores[torch.arange(items.size(0)), items])


def test_untied_scores_with_its_own_table_and_trains_both(tiny_data):
    model, batch = _built(tiny_data, output_embedding="untied")
    table, output = model.embedding.item.weight, model.output.table.weight  # (V, d) x2
    assert output.shape == table.shape and not torch.equal(output, table)
    assert output.std().item() == pytest.approx(table.std().item(), rel=0.2)  # the same init
    hidden, targets, _ = _hidden(model, batch)
    loss = model.calculate_loss(batch)
    assert loss.item() == pytest.approx(_ce_by_hand(hidden @ output.T, targets).item(), rel=1e-5)
    loss.backward()
    assert table.grad.abs().sum() > 0 and output.grad.abs().sum() > 0
    torch.testing.assert_close(model.full_sort_predict(batch),
                               model.encode_sequences(batch) @ output.T)


def test_tied_is_the_shared_embedding_with_no_new_parameters(tiny_data):
    tied, batch = _built(tiny_data)
    untied, _ = _built(tiny_data, output_embedding="untied")
    biased, _ = _built(tiny_data, output_embedding="tied_bias")
    assert not [k for k in tied.state_dict() if k.startswith("output.")]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    v, d = tied.embedding.item.weight.shape
    assert count(untied) - count(tied) == v * d and count(biased) - count(tied) == v
    hidden, targets, _ = _hidden(tied, batch)
    table = tied.embedding.item.weight
    assert tied.calculate_loss(batch).item() == pytest.approx(
        _ce_by_hand(hidden @ table.T, targets).item(), rel=1e-5)
    torch.testing.assert_close(tied.full_sort_predict(batch),
                               tied.encode_sequences(batch) @ table.T)


def test_bad_value_names_the_key_and_the_default_keeps_old_hashes(tiny_data):
    with pytest.raises(PluginError, match="'output_embedding' = 'shared' is not allowed"):
        Config("SASRec", "tiny", config_dict=fast_config(tiny_data, output_embedding="shared"))
    config = Config("SASRec", "tiny", config_dict=fast_config(tiny_data))
    tied = settings_hash(config)
    del config.final_config_dict["output_embedding"]  # the settings of the code before the key
    assert settings_hash(config) == tied
    untied = Config("SASRec", "tiny", config_dict=fast_config(tiny_data, output_embedding="untied"))
    assert settings_hash(untied) != tied


def test_export_refuses_an_untied_model_in_one_line(tmp_path):
    checkpoint = train_tiny(tmp_path, output_embedding="untied")
    out = tmp_path / "bundle"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "recbole_sasrec_ext", "export", "--checkpoint", str(checkpoint),
         "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == "" and not out.exists()
    assert proc.stderr.strip().splitlines() == [
        f"error: {checkpoint}: output_embedding is 'untied'; a bundle scores with the input item "
        "table, so only output_embedding 'tied' can be exported"]
