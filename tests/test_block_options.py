"""Model options of the shared transformer: the original SASRec block, positions, initialisation,
and the loss chosen for full ranking."""

import pytest
import torch
from conftest import fast_config
from recbole.data.interaction import Interaction

from recbole_sasrec_ext import Config, PluginError
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.layers.attention import CausalSelfAttention
from recbole_sasrec_ext.layers.block import TransformerBlock
from recbole_sasrec_ext.layers.embedding import forward_positions

OPTIONS = [
    {"layer_norm": "sasrec"},
    {"position_order": "from_start"},
    {"layer_norm": "sasrec", "position_order": "from_start", "init": "normal"},
    {"layer_norm": "gated"},
    {"layer_norm": "gated", "hidden_act": "swiglu", "inner_size": 16},
]


def _model(tiny_data, **extra):
    config = Config("SASRec", "tiny", config_dict=fast_config(tiny_data, **extra))
    model = build(config)[-1]
    model.eval()
    return model


def _batch(seq, length):
    return Interaction({"item_id_list": torch.tensor(seq), "item_length": torch.tensor(length)})


def test_sasrec_block_exact():
    torch.manual_seed(0)
    attention = CausalSelfAttention(8, 2, 0.0)
    block = TransformerBlock(attention, 8, 8, 0.0, "relu", "sasrec", 1e-8).eval()
    x = torch.randn(3, 5, 8)
    out, _ = block(x)
    q = block.norm1(x)
    w, b = attention.qkv.weight, attention.qkv.bias
    wq, wk, wv = w.split(8)
    bq, bk, bv = b.split(8)
    def heads(t):
        return t.view(3, 5, 2, 4).transpose(1, 2)  # (B, h, L, d/h)

    logits = heads(q @ wq.T + bq) @ heads(x @ wk.T + bk).transpose(-1, -2) / 2.0  # (B, h, L, L)
    logits = logits.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
    y = (logits.softmax(-1) @ heads(x @ wv.T + bv)).transpose(1, 2).reshape(3, 5, 8)
    h = block.norm2(q + attention.proj(y))  # residual on the normalised queries
    expected = h + block.ffn(h)  # FFN residual on its own normalised input
    assert torch.allclose(out, expected, atol=1e-5)


def test_gated_block_exact():
    """eSASRec's LiGR block: each residual branch gated by the stream; SwiGLU feed-forward."""
    torch.manual_seed(0)
    attention = CausalSelfAttention(8, 2, 0.0)
    block = TransformerBlock(attention, 8, 12, 0.0, "swiglu", "gated", 1e-8).eval()
    x = torch.randn(3, 5, 8)
    out, _ = block(x)
    a = attention(block.norm1(x)).out  # (3, 5, 8)
    h = x + torch.sigmoid(block.gate1(x)) * a
    w1, w2, w3 = block.ffn.net[0], block.ffn.net[3], block.ffn.up
    n = block.norm2(h)
    ffn = w2(torch.nn.functional.silu(w1(n)) * w3(n))
    expected = h + torch.sigmoid(block.gate2(h)) * ffn
    assert torch.allclose(out, expected, atol=1e-5)


def test_gated_block_has_no_final_norm(tiny_data):
    assert isinstance(_model(tiny_data, layer_norm="gated").final_norm, torch.nn.Identity)
    assert isinstance(_model(tiny_data, layer_norm="pre").final_norm, torch.nn.LayerNorm)


def test_attention_kv_equal_to_queries_is_self_attention():
    torch.manual_seed(0)
    attention = CausalSelfAttention(8, 2, 0.0).eval()
    x = torch.randn(2, 4, 8)
    assert torch.allclose(attention(x).out, attention(x, kv=x).out, atol=1e-6)


@pytest.mark.parametrize("options", OPTIONS)
def test_causality(tiny_data, options):
    model = _model(tiny_data, **options)
    ha = model(_batch([[3, 5, 7, 9, 2, 4, 0, 0, 0, 0]], [6]))
    hb = model(_batch([[3, 5, 7, 11, 12, 13, 0, 0, 0, 0]], [6]))
    assert torch.allclose(ha[0, :3], hb[0, :3], atol=1e-6)
    assert not torch.allclose(ha[0, 3], hb[0, 3])


@pytest.mark.parametrize("options", OPTIONS)
def test_padding_invariance(tiny_data, options):
    model = _model(tiny_data, **options)
    long_pad = model.encode_sequences(_batch([[3, 5, 7, 0, 0, 0, 0, 0, 0, 0]], [3]))
    short_pad = model.encode_sequences(_batch([[3, 5, 7, 0, 0]], [3]))
    assert torch.allclose(long_pad, short_pad, atol=1e-6)


def test_positions_from_start_and_from_end(tiny_data):
    assert forward_positions(torch.tensor([2, 4]), 4).tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]
    a = _model(tiny_data, position_order="from_start")
    b = _model(tiny_data, position_order="from_end")
    b.load_state_dict(a.state_dict())
    seq = _batch([[3, 5, 7, 0, 0, 0, 0, 0, 0, 0]], [3])
    x_start, _ = a.embedding(seq["item_id_list"], seq["item_length"])
    x_end, _ = b.embedding(seq["item_id_list"], seq["item_length"])
    item = a.embedding.item(seq["item_id_list"][0, :3]) * a.embedding.scale  # (3, d)
    pos = a.embedding.position.weight
    assert torch.allclose(x_start[0, :3], item + pos[[0, 1, 2]], atol=1e-6)
    assert torch.allclose(x_end[0, :3], item + pos[[2, 1, 0]], atol=1e-6)


def test_normal_init_std(tiny_data):
    model = _model(tiny_data, init="normal", init_std=0.05, hidden_size=64, inner_size=256)
    weight = model.blocks[0].ffn.net[0].weight  # (256, 64)
    assert abs(weight.std().item() - 0.05) < 0.005
    assert model.blocks[0].ffn.net[0].bias.abs().sum() == 0
    assert model.embedding.item.weight[0].abs().sum() == 0
    xavier = _model(tiny_data, hidden_size=64, inner_size=256, init="xavier").blocks[0].ffn.net[0]
    xavier = xavier.weight
    assert abs(xavier.std().item() - (2 / (64 + 256)) ** 0.5) < 0.01  # Xavier-normal


def test_rksa_rejects_sasrec_block(tiny_data):
    with pytest.raises(PluginError,
                       match="config key 'layer_norm' = 'sasrec' is not allowed for RKSA"):
        build(Config("RKSA", "tiny", config_dict=fast_config(tiny_data, layer_norm="sasrec")))


def test_unknown_option_values_name_the_key(tiny_data):
    for key, value in (("init", "uniform"), ("position_order", "left"), ("layer_norm", "sandwich")):
        with pytest.raises(PluginError, match=f"config key '{key}' = '{value}' is not allowed"):
            Config("SASRec", "tiny", config_dict=fast_config(tiny_data, **{key: value}))


def test_loss_default_follows_protocol(tiny_data):
    full = Config("SASRec", "tiny", config_dict=fast_config(tiny_data))
    recipe_notes = [note for note in full.notes if note.startswith("full-ranking recipe: ")]
    assert full["loss_type"] == "CE" and "loss_type=CE" in recipe_notes[0]
    assert full["train_stride"] == 5 and "train_stride=5" in recipe_notes[0]
    sampled = Config("SASRec", "tiny", config_dict=fast_config(
        tiny_data, eval_args={"split": {"LS": "valid_and_test"}, "mode": "uni100"}))
    assert (sampled["loss_type"], sampled["train_stride"], sampled.notes) == ("BCE", 0, [])
    mixed = fast_config(tiny_data, eval_args={"split": {"LS": "valid_and_test"},
                                              "mode": {"valid": "uni100", "test": "full"}})
    assert Config("SASRec", "tiny", config_dict=mixed)["loss_type"] == "BCE"
    chosen = Config("SASRec", "tiny",
                    config_dict=fast_config(tiny_data, loss_type="BCE", train_stride=0))
    assert (chosen["loss_type"], chosen["train_stride"]) == ("BCE", 0)
    assert not any("loss_type=" in n or "train_stride=" in n for n in chosen.notes)
    assert Config("RKSA", "tiny", config_dict=fast_config(tiny_data))["loss_type"] == "CE"


def test_sampled_softmax_3000_negatives_runs(tiny_data):
    model = _model(tiny_data, loss_type="SAMPLED_SOFTMAX", n_negatives=3000)
    model.train()
    _, train, _, _, _ = build(Config("SASRec", "tiny", config_dict=fast_config(tiny_data)))
    loss = model.calculate_loss(next(iter(train)))
    assert torch.isfinite(loss) and loss.item() > 0
