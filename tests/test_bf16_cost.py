"""The bf16 variant that benchmark/bf16_cost.py times computes the plugin's CE (so its timing is
of the same work), to bfloat16 precision."""

import json

import pytest
import torch

from recbole_sasrec_ext.benchmark import bf16_cost
from recbole_sasrec_ext.layers.chunked_softmax import chunked_softmax_ce


def test_bf16_variant_matches_the_float32_loss_and_gradients():
    torch.manual_seed(0)
    h = (torch.randn(300, 16) * 0.5).requires_grad_()  # (P, d)
    w = (torch.randn(500, 16) * 0.3).requires_grad_()  # (V, d)
    target = torch.randint(0, 500, (300,))
    loss = chunked_softmax_ce(h, w, target, chunk=64)
    loss.backward()
    value, grad_h, grad_w = bf16_cost.bf16_ce(h.detach(), w.detach(), target, 0.0, chunk=64)
    assert abs(value - loss.item()) < 1e-2 * loss.item()
    for ours, exact in ((grad_h, h.grad), (grad_w, w.grad)):
        assert (ours - exact).norm() < 2e-2 * exact.norm()


def test_runs_on_small_shapes_and_prints_json(capsys):
    args = ["--positions", "40", "--items", "200", "--d", "8", "--rounds", "1", "--repeats", "1"]
    assert bf16_cost.main(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["what"].split(",")[0] for line in lines][0] == "CE forward+backward"
    assert lines[0]["bf16/float32"] > 0


@pytest.mark.parametrize("option", ["--repeats", "--positions", "--items"])
def test_a_count_below_one_is_a_usage_error_naming_it(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bf16_cost.main([option, "0"])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err
