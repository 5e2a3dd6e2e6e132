"""Export and the inference API: ONNX vs PyTorch parity, unknown tokens, empty sequences,
exclusion, candidates, huge k, similar items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fast_config
from recbole.data.interaction import Interaction

from recbole_sasrec_ext import Config, serving
from recbole_sasrec_ext.apps.quick_start import build, load_data_and_model
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.contract.summary import RunSummary
from recbole_sasrec_ext.serving.encoder import LastPositionEncoder
from recbole_sasrec_ext.serving.export import TEST_UNKNOWN, build_encoder, run_metrics
from recbole_sasrec_ext.serving.padding import pad_right
from recbole_sasrec_ext.serving.topk import top_k_rows
from recbole_sasrec_ext.training import checkpoint as ckpt


@pytest.fixture(scope="module")
def models(tiny_bundle):
    _, bundle = tiny_bundle
    return serving.load(bundle, "onnx"), serving.load(bundle, "torch")


def _histories(rec):
    hist = rec.bundle.histories
    return [np.asarray(hist.of(u), dtype=np.int64) for u in range(len(hist))]


def test_onnx_matches_pytorch_and_the_trained_model(tiny_bundle, models):
    checkpoint, _ = tiny_bundle
    onnx_rec, torch_rec = models
    seqs = _histories(onnx_rec)
    got, want = onnx_rec.scores(seqs), torch_rec.scores(seqs)  # (U, n_items) each
    assert np.abs(got - want).max() <= 1e-4
    top = lambda s: np.argsort(-s[:, 1:], axis=1, kind="stable")[:, :10]  # noqa: E731
    assert (top(got) == top(want)).all()
    # the fallback encoder computes what the RecBole model's full_sort_predict does
    config, model, *_ = load_data_and_model(str(checkpoint))
    item_seq, lengths = pad_right(seqs, config["MAX_ITEM_LIST_LENGTH"])
    full = np.zeros((len(seqs), config["MAX_ITEM_LIST_LENGTH"]), dtype=np.int64)
    full[:, : item_seq.shape[1]] = item_seq
    with torch.no_grad():
        reference = model.eval().full_sort_predict(Interaction({
            "item_id_list": torch.from_numpy(full), "item_length": torch.from_numpy(lengths)}))
    assert np.abs(reference.numpy() - want).max() <= 1e-4
    card = json.loads((tiny_bundle[1] / "card.json").read_text())
    assert card["dataset"]["name"] == "tiny" and card["protocol"] == "full"
    assert card["export_check"]["top10_identical"] == card["export_check"]["users"] == 40
    assert set(card["versions"]) >= {"recbole", "torch", "onnx", "onnxruntime", "python"}
    assert card["protocol_details"]["mode"] and card["protocol_details"]["topk"]


def test_model_card_metrics_from_the_checkpoint_and_the_summary(tiny_bundle, tmp_path):
    checkpoint, bundle = tiny_bundle
    card = json.loads((bundle / "card.json").read_text())
    summary = RunSummary.from_json(
        (bundle.parent / "summary.json").read_text().splitlines()[-1])
    metrics = card["metrics"]
    assert metrics["test"] == summary.test_result and metrics["test"]
    assert metrics["validation"] == summary.best_valid_result and metrics["validation"]
    assert "summary.json" in metrics["test_source"]
    state = ckpt.load(checkpoint, map_location="cpu")
    alone = run_metrics(state, checkpoint, None)  # no summary: the test metrics are unknown
    assert alone["test"] is None and alone["test_source"] == TEST_UNKNOWN
    assert alone["validation"] == state["progress"]["best_valid_result"]
    other = tmp_path / "other.json"
    other.write_text(summary.to_json().replace(Path(summary.checkpoint).name, "x.pth"))
    with pytest.raises(PluginError, match="is the summary of checkpoint"):
        run_metrics(state, checkpoint, other)
    (tmp_path / "junk.json").write_text("no summary here\n")
    with pytest.raises(PluginError, match="not a run summary"):
        run_metrics(state, checkpoint, tmp_path / "junk.json")


def test_last_position_graph_equals_the_full_forward(tiny_bundle, tmp_path):
    """The bundle's encoder and graph (last block at the last position only) against the plain
    forward (every block at every position), PyTorch and ONNX."""
    from recbole_sasrec_ext.benchmark.inference import plain_bundle

    _, bundle = tiny_bundle
    settings = json.loads((bundle / "settings.json").read_text())["encoder"]
    state = torch.load(bundle / "weights.pt", weights_only=True)
    full, last = (LastPositionEncoder(settings, last_only=flag).eval() for flag in (False, True))
    full.load_state_dict(state)
    last.load_state_dict(state)
    rec = serving.load(bundle, "onnx")
    seqs = _histories(rec)
    item_seq, lengths = pad_right(seqs, settings["max_seq_length"])
    with torch.inference_mode():
        want = full(torch.from_numpy(item_seq), torch.from_numpy(lengths)).numpy()
        got = last(torch.from_numpy(item_seq), torch.from_numpy(lengths)).numpy()
    assert np.abs(got - want).max() <= 1e-5
    plain = serving.load(plain_bundle(str(bundle), str(tmp_path / "plain")), "onnx")
    assert np.abs(plain.scores(seqs) - want).max() <= 1e-4
    assert np.abs(rec.scores(seqs) - want).max() <= 1e-4


def test_onnx_top_k_equals_numpy_top_k(models):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, (50, 40)).astype(np.float32)  # (50, 40) many ties
    scores[rng.random((50, 40)) < 0.3] = -np.inf
    scores[3] = -np.inf
    onnx_scorer = models[0].scorer
    assert onnx_scorer.topk_session is not None
    for k in (1, 7, 40, 1000):
        want_idx, want_counts = top_k_rows(scores, k)
        got_idx, got_counts = onnx_scorer.top_k(scores, k)
        assert (got_counts == want_counts).all()
        for g, w, c in zip(got_idx, want_idx, want_counts):
            assert list(g[:c]) == list(w[:c])


@pytest.mark.parametrize("options", [
    {"layer_norm": "post"}, {"layer_norm": "sasrec", "position_order": "from_start"},
    {"n_layers": 1, "n_heads": 2, "hidden_act": "gelu"},
    {"layer_norm": "gated", "hidden_act": "swiglu", "inner_size": 16},
])
def test_last_position_encoder_equals_the_model(tiny_data, options):
    """Every block placement: the encoder that computes only the last position of the last block
    gives the model's scores."""
    config = Config("SASRec", "tiny", config_dict=fast_config(tiny_data, **options))
    *_, model = build(config)
    model.eval()
    encoder = build_encoder(model, config)
    seq = torch.tensor([[3, 5, 7, 0, 0, 0, 0, 0, 0, 0], [2, 4, 6, 8, 1, 3, 9, 10, 11, 12],
                        [9, 0, 0, 0, 0, 0, 0, 0, 0, 0]])  # (3, 10)
    lengths = torch.tensor([3, 10, 1])
    with torch.no_grad():
        want = model.full_sort_predict(Interaction({"item_id_list": seq, "item_length": lengths}))
        got = encoder(seq, lengths)  # (3, n_items)
        shorter = encoder(seq[[0, 2], :3], lengths[[0, 2]])  # window cut to the longest
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(shorter, want[[0, 2]], atol=1e-5)


def test_unknown_tokens_are_reported_not_raised(models):
    rec = models[0]
    [known, partly, none] = rec.recommend([["1", "2"], ["nope", "1", "2", "nope", "zz"],
                                           ["nope"]], k=5)
    assert partly.unknown == ["nope", "zz"] and partly.items == known.items
    assert partly.scores == known.scores and partly.fallback is None
    assert none.unknown == ["nope"] and none.fallback == "popular"


def test_empty_sequence_gets_the_most_popular_items(models):
    rec = models[0]
    pop = rec.bundle.popularity
    order = sorted(range(1, len(pop)), key=lambda i: (-pop[i], i))[:4]
    [res] = rec.recommend([[]], k=4)
    assert res.fallback == "popular" and res.items == [rec.bundle.items[i] for i in order]
    assert res.scores == [float(pop[i]) for i in order]
    assert "[PAD]" not in res.items and res.to_dict()["fallback"] == "popular"


def test_exclusion_candidates_and_huge_k(models):
    rec = models[0]
    seq = ["1", "2", "3"]
    [seen] = rec.recommend([seq], k=29, exclude_seen=False)
    [unseen] = rec.recommend([seq], k=29)
    assert set(seq) <= set(seen.items) and not set(seq) & set(unseen.items)
    assert [t for t in seen.items if t not in seq] == unseen.items[: 29 - 3]
    # huge k: everything that can be recommended, once, with a note; never the padding item
    [every] = rec.recommend([seq], k=10**6)
    assert sorted(every.items, key=int) == [str(i) for i in range(4, 31)]
    assert every.note == "k=1000000 but only 27 items can be recommended: all returned"
    [cand] = rec.recommend([seq], k=10, candidates=["3", "7", "5", "x"])
    assert set(cand.items) == {"7", "5"} and cand.unknown == ["x"]
    assert cand.note == "k=10 but only 2 items can be recommended: all returned"
    assert json.loads(json.dumps(cand.to_dict(), allow_nan=False)) == cand.to_dict()
    with pytest.raises(PluginError, match="k must be >= 1"):
        rec.recommend([seq], k=0)


def test_recommend_all_streams_every_user_in_order(models):
    rec = models[0]
    rows = list(rec.recommend_all(k=3, chunk_size=7))
    hist = rec.bundle.histories
    assert [r.user for r in rows] == hist.users and len(rows) == 40
    tokens = [[rec.bundle.items[i] for i in hist.of(u)] for u in (0, 17)]
    direct = rec.recommend(tokens, k=3)
    assert [rows[0].items, rows[17].items] == [d.items for d in direct]


def test_similar_items_by_cosine(models):
    rec = models[0]
    emb = rec.bundle.item_embeddings.astype(np.float64)
    unit = emb[1:] / np.linalg.norm(emb[1:], axis=1, keepdims=True)
    cos = unit @ unit[4]  # item id 5
    cos[4] = -np.inf
    want = [rec.bundle.items[i + 1] for i in np.argsort(-cos)[:3]]
    res = rec.similar_items(rec.bundle.items[5], k=3)
    assert res.items == want and res.scores == sorted(res.scores, reverse=True)
    assert rec.bundle.items[5] not in rec.similar_items(rec.bundle.items[5], k=100).items
    with pytest.raises(PluginError, match="unknown item token: 'zz'"):
        rec.similar_items("zz")


def test_missing_bundle_is_one_line(tmp_path):
    with pytest.raises(PluginError, match="bundle not found"):
        serving.load(tmp_path / "nothing")
    (tmp_path / "b").mkdir()
    with pytest.raises(PluginError, match="settings.json is missing"):
        serving.load(tmp_path / "b")


def test_titles_come_with_the_items_when_the_bundle_has_them(tiny_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "with-titles"
    shutil.copytree(tiny_bundle[1], bundle)
    (bundle / "titles.json").write_text(json.dumps({"3": "Three", "7": "Seven"}))
    rec = serving.load(bundle, "onnx")
    [res] = rec.recommend([["1"]], k=30, candidates=["3", "7", "9"])
    assert res.titles == [{"3": "Three", "7": "Seven"}.get(t) for t in res.items]
    without = serving.load(tiny_bundle[1], "onnx").recommend([["1"]], k=2)[0].to_dict()
    assert "titles" not in without
