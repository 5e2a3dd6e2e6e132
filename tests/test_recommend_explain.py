"""recommend and explain from the checkpoint of a 1-epoch ml-100k run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from recbole_sasrec_ext import run
from recbole_sasrec_ext.apps.recommend import Recommender, recommend
from recbole_sasrec_ext.common.errors import PluginError


@pytest.fixture(scope="module")
def ml100k_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ml100k")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        summary = run("SASRec", "ml-100k", config_dict={
            "epochs": 1, "MAX_ITEM_LIST_LENGTH": 20, "show_progress": False, "state": "WARNING",
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"},
        })
    finally:
        os.chdir(cwd)
    return folder / summary.checkpoint


def test_recommend_returns_original_tokens_with_titles(ml100k_checkpoint):
    rec = Recommender.load(ml100k_checkpoint)
    results = rec.recommend(["196", "1"], k=5)
    assert [r.user for r in results] == ["196", "1"]
    assert all(len(r.items) == 5 and r.scores == sorted(r.scores, reverse=True) for r in results)
    token_id = rec.dataset.field2token_id[rec.dataset.iid_field]
    assert all(t in token_id and t != "[PAD]" for r in results for t in r.items)
    assert rec.titles["1"] == "Toy Story" and rec.titles["50"] == "Star Wars"
    assert results[0].titles == [rec.titles[t] for t in results[0].items]
    # excluding seen items: none of user 1's 272 ml-100k items comes back
    seen = set(rec.dataset.id2token(rec.dataset.iid_field, rec.histories[rec.user_ids(["1"])[0]]))
    assert len(seen) == 272
    unseen = rec.recommend(["1"], k=50, exclude_seen=True)[0]
    assert not seen & set(unseen.items)
    # batching does not change the answer
    assert rec.recommend(["196", "1"], k=5, batch_size=1) == results
    assert recommend(ml100k_checkpoint, [196], k=5)[0] == results[0]


def test_unknown_user_is_an_error(ml100k_checkpoint):
    rec = Recommender.load(ml100k_checkpoint)
    with pytest.raises(PluginError, match="unknown user.*: nobody, 99999"):
        rec.recommend(["1", "nobody", "99999"])


def _cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "recbole_sasrec_ext", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=600)


def test_recommend_cli_json_lines_and_exit_codes(ml100k_checkpoint, tmp_path):
    proc = _cli(["recommend", "--checkpoint", str(ml100k_checkpoint), "--users", "196,1",
                 "--k", "3"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["user"] for r in rows] == ["196", "1"] and all(len(r["items"]) == 3 for r in rows)
    assert all(len(r["titles"]) == 3 for r in rows)
    assert "users/s" in proc.stderr.splitlines()[-1]
    bad = _cli(["recommend", "--checkpoint", str(ml100k_checkpoint), "--users", "nobody"], tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "error: unknown user(s) for this checkpoint's data set 'ml-100k': nobody"
    ]


def test_explain_writes_pngs_and_averages_by_position(ml100k_checkpoint, tmp_path):
    import torch

    from recbole_sasrec_ext.apps.explain import accumulate_by_position, attention, explain

    paths = explain(ml100k_checkpoint, tmp_path / "png", max_users=64)
    assert [p.name for p in paths] == ["attention_blocks.png", "attention_user.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
               for p in paths)
    rec = Recommender.load(ml100k_checkpoint)
    extras, lengths = attention(rec, rec.user_ids(["196", "1"]))
    weights = extras[0].weights  # (2, L, L), explicit weights equal the fused path's output
    n = int(lengths[0])
    assert torch.allclose(weights[0, :n, :n].sum(-1), torch.ones(n), atol=1e-5)
    assert torch.all(weights[0].triu(1) == 0)  # causal
    total, count = torch.zeros(3, 3), torch.zeros(3, 3)
    accumulate_by_position(total, count, torch.tensor([[[1.0, 0, 0], [0.25, 0.75, 0], [0, 0, 0]]]),
                           torch.tensor([2]))
    assert total.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0.25, 0.75]]
    assert count.tolist() == [[0, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_explicit_attention_weights_match_the_fused_path():
    import torch

    from recbole_sasrec_ext.layers.attention import CausalSelfAttention

    torch.manual_seed(0)
    layer = CausalSelfAttention(8, 2, 0.0).eval()
    x = torch.randn(3, 5, 8)
    fused = layer(x)
    layer.need_weights = True
    explicit = layer(x)
    assert fused.weights is None and explicit.weights.shape == (3, 5, 5)
    torch.testing.assert_close(explicit.out, fused.out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sharing", ["per_block", "shared"])
def test_explain_rksa_writes_mixture_and_skew(tiny_data, tmp_path, sharing):
    from conftest import fast_config

    from recbole_sasrec_ext.apps.explain import explain, skew

    summary = run("RKSA", "tiny",
                  config_dict=fast_config(tiny_data, epochs=1, kernel_sharing=sharing))
    paths = explain(summary.checkpoint, tmp_path / "png")
    assert [p.name for p in paths] == ["attention_blocks.png", "attention_user.png",
                                       "rksa_mixture.png", "rksa_skew.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    rec = Recommender.load(summary.checkpoint)
    alpha, n = skew(rec, rec.user_ids(["10"])[0])
    assert alpha.shape == (n, n) and (alpha[~np.tril(np.ones((n, n), dtype=bool))] == 0).all()
