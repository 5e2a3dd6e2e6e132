"""Each loss against a hand computation on a tiny input."""

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_sasrec_ext.layers import losses

H = torch.tensor([[1.0, 0.0], [0.5, -1.0]])  # (P=2, d=2)
# (n_items=4, d) row 0 = padding
ITEMS = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5], [0.3, 0.3]])
POS = torch.tensor([1, 3])


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_negatives_never_hit_target_or_padding():
    torch.manual_seed(0)
    pos = torch.tensor([1, 2, 3] * 1000)
    neg = losses.sample_negatives_excluding(pos, n_items=4, k=5)
    assert neg.min() >= 1 and neg.max() <= 3
    assert not (neg == pos[:, None]).any()
    # uniform over the two other items
    counts = torch.bincount(neg[pos == 1].flatten(), minlength=4)
    assert abs(counts[2].item() / counts[3].item() - 1) < 0.1


def test_bce_matches_hand_computation():
    torch.manual_seed(1)
    neg = losses.sample_negatives_excluding(POS, 4, 1)[:, 0]
    torch.manual_seed(1)
    got = losses.bce_loss(H, POS, ITEMS).item()
    want = 0.0
    for p in range(2):
        sp = float(H[p] @ ITEMS[POS[p]])
        sn = float(H[p] @ ITEMS[neg[p]])
        want += -math.log(_sig(sp)) - math.log(1 - _sig(sn))
    assert got == pytest.approx(want / 2, rel=1e-5)


def test_ce_excludes_padding():
    got = losses.ce_loss(H, POS, ITEMS).item()
    want = 0.0
    for p in range(2):
        scores = [float(H[p] @ ITEMS[i]) for i in (1, 2, 3)]
        want += -scores[POS[p] - 1] + math.log(sum(math.exp(s) for s in scores))
    assert got == pytest.approx(want / 2, rel=1e-5)


def test_sampled_softmax_masks_accidental_hits():
    torch.manual_seed(2)
    neg = torch.randint(1, 4, (6,))
    torch.manual_seed(2)
    got = losses.sampled_softmax_loss(H, POS, ITEMS, k=6).item()
    want = 0.0
    for p in range(2):
        sp = float(H[p] @ ITEMS[POS[p]])
        others = [float(H[p] @ ITEMS[n]) for n in neg if n != POS[p]]
        want += -sp + math.log(math.exp(sp) + sum(math.exp(s) for s in others))
    assert got == pytest.approx(want / 2, rel=1e-5)


def test_gbce_with_t_zero_is_bce_over_k_negatives():
    torch.manual_seed(3)
    neg = losses.sample_negatives_excluding(POS, 4, 2)
    torch.manual_seed(3)
    got = losses.gbce_loss(H, POS, ITEMS, k=2, t=0.0).item()
    # t = 0 -> beta = 1: plain BCE with the positive and k negatives
    want = 0.0
    for p in range(2):
        want += -math.log(_sig(float(H[p] @ ITEMS[POS[p]])))
        want += sum(-math.log(1 - _sig(float(H[p] @ ITEMS[n]))) for n in neg[p])
    assert got == pytest.approx(want / 2, rel=1e-5)


def test_gbce_beta_calibration():
    # k equal to all candidates (alpha = 1) -> beta = 1 for any t
    torch.manual_seed(4)
    a = losses.gbce_loss(H, POS, ITEMS, k=2, t=0.75).item()
    torch.manual_seed(4)
    b = losses.gbce_loss(H, POS, ITEMS, k=2, t=0.0).item()
    assert a == pytest.approx(b)


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_chunked_softmax_ce_equals_cross_entropy_in_value_and_gradients(chunk):
    from recbole_sasrec_ext.layers.chunked_softmax import chunked_softmax_ce

    gen = torch.Generator().manual_seed(0)
    h = torch.randn(10, 6, generator=gen, requires_grad=True)  # (P, d)
    w = torch.randn(9, 6, generator=gen, requires_grad=True)  # (V, d)
    w_ref = w.detach().clone().requires_grad_(True)
    h_ref = h.detach().clone().requires_grad_(True)
    target = torch.randint(0, 9, (10,), generator=gen)  # (P,)
    (chunked_softmax_ce(h, w, target, chunk) * 2.5).backward()
    (F.cross_entropy(h_ref @ w_ref.T, target) * 2.5).backward()
    expected = F.cross_entropy(h_ref @ w_ref.T, target)
    torch.testing.assert_close(chunked_softmax_ce(h, w, target, chunk), expected)
    torch.testing.assert_close(h.grad, h_ref.grad)
    torch.testing.assert_close(w.grad, w_ref.grad)


def test_chunked_softmax_ce_is_exact_where_the_target_probability_underflows():
    """A target 200 nats below the best logit (softmax probability 0 in float32): the loss is
    still logsumexp - target logit, and the gradient softmax - onehot."""
    from recbole_sasrec_ext.layers.chunked_softmax import chunked_softmax_ce

    h = torch.tensor([[1.0, 0.0], [0.5, 0.5]], requires_grad=True)  # (2, d)
    w = torch.tensor([[200.0, 0.0], [0.0, 0.0], [0.0, 3.0]], requires_grad=True)  # (3, d)
    target = torch.tensor([1, 2])  # position 0: logits 200 / 0 / 0, target 1
    loss = chunked_softmax_ce(h, w, target, 1)
    expected = F.cross_entropy(h.detach() @ w.detach().T, target)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() > 100.0 / 2  # the first position alone adds 200 / 2
    loss.backward()
    h_ref, w_ref = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.cross_entropy(h_ref @ w_ref.T, target).backward()
    torch.testing.assert_close(h.grad, h_ref.grad)
    torch.testing.assert_close(w.grad, w_ref.grad)


@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_chunked_softmax_ce_leaves_out_each_rows_own_classes_but_the_target(chunk):
    """``own``: a position's softmax drops its row's classes (padding -1 ignored) except its own
    target, also when the target is one of them (a repeat)."""
    from recbole_sasrec_ext.layers.chunked_softmax import chunked_softmax_ce

    gen = torch.Generator().manual_seed(1)
    h = torch.randn(6, 5, generator=gen, requires_grad=True)  # (P, d)
    w = torch.randn(9, 5, generator=gen, requires_grad=True)  # (V, d)
    target = torch.tensor([2, 4, 0, 2, 7, 3])  # (P,)
    own = torch.tensor([[2, 4, 5, -1], [0, 7, 3, 3]])  # (R, M) row 0 holds target 2 (a repeat)
    own_row = torch.tensor([0, 0, 0, 1, 1, 1])  # (P,)
    (chunked_softmax_ce(h, w, target, chunk, own=own, own_row=own_row) * 1.5).backward()
    h_ref, w_ref = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    logits = h_ref @ w_ref.T  # (P, V)
    drop = torch.zeros(6, 9, dtype=torch.bool)
    for p, r in enumerate(own_row.tolist()):
        for c in own[r].tolist():
            if c >= 0 and c != target[p]:
                drop[p, c] = True
    # row 0 owns {2, 4, 5}, row 1 {0, 3, 7}: a position whose target is one of them keeps it
    assert drop.sum(1).tolist() == [2, 2, 3, 3, 2, 2]
    expected = F.cross_entropy(logits.masked_fill(drop, float("-inf")), target)
    (expected * 1.5).backward()
    torch.testing.assert_close(chunked_softmax_ce(h, w, target, chunk, own=own, own_row=own_row),
                               expected.detach())
    torch.testing.assert_close(h.grad, h_ref.grad)
    torch.testing.assert_close(w.grad, w_ref.grad)
    assert chunked_softmax_ce(h, w, target, chunk) > expected  # fewer items in the softmax


def test_chunked_softmax_ce_of_no_positions_is_zero_with_zero_gradients():
    from recbole_sasrec_ext.layers.chunked_softmax import chunked_softmax_ce

    h = torch.zeros(0, 4, requires_grad=True)
    w = torch.randn(5, 4, requires_grad=True)
    loss = chunked_softmax_ce(h, w, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(w.grad) == 0


def test_sequence_sampled_softmax_matches_a_loop_over_positions():
    torch.manual_seed(0)
    items = torch.randn(9, 4)  # (n_items, d), row 0 padding
    hidden = torch.randn(3, 5, 4)  # (B, L, d)
    targets = torch.tensor([[2, 3, 0, 0, 0], [4, 5, 6, 7, 8], [1, 0, 0, 0, 0]])  # (B, L)
    own = torch.cat([torch.tensor([[1, 2, 0, 0, 0], [3, 4, 5, 6, 7], [8, 0, 0, 0, 0]]), targets], 1)
    for own_items in (None, own):
        torch.manual_seed(7)
        loss = losses.sequence_sampled_softmax_loss(hidden, targets, items, 6, own_items)
        torch.manual_seed(7)
        neg = torch.randint(1, 9, (3, 6))  # the same draw: 6 negatives per sequence
        terms = []
        for b in range(3):
            row_own = set() if own_items is None else set(own_items[b].tolist())
            for t in range(5):
                pos = int(targets[b, t])
                if pos == 0:
                    continue
                kept = [int(n) for n in neg[b] if int(n) != pos and int(n) not in row_own]
                logits = [hidden[b, t] @ items[pos]] + [hidden[b, t] @ items[n] for n in kept]
                terms.append(-torch.log_softmax(torch.stack(logits), 0)[0])
        torch.testing.assert_close(loss, torch.stack(terms).mean())


def test_sequence_negatives_that_are_all_own_items_leave_only_the_target():
    items = torch.randn(4, 3)  # items 1..3
    hidden = torch.randn(2, 2, 3)
    targets = torch.tensor([[1, 2], [3, 1]])
    own = torch.tensor([[3, 1, 2], [2, 3, 1]])  # every item is each row's own
    loss = losses.sequence_sampled_softmax_loss(hidden, targets, items, 50, own)
    assert loss.item() == 0.0  # softmax over the target alone


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunked_softmax_ce_label_smoothing_equals_torch_in_value_and_gradients(chunk):
    from recbole_sasrec_ext.layers.chunked_softmax import chunked_softmax_ce
    g = torch.Generator().manual_seed(7)
    h = torch.randn(10, 4, generator=g, requires_grad=True)
    w = torch.randn(13, 4, generator=g, requires_grad=True)
    target = torch.randint(0, 13, (10,), generator=g)
    expected = F.cross_entropy(h @ w.T, target, label_smoothing=0.3)
    (expected * 1.5).backward()
    grad_h, grad_w = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    got = chunked_softmax_ce(h, w, target, chunk, smoothing=0.3)
    (got * 1.5).backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(h.grad, grad_h)
    torch.testing.assert_close(w.grad, grad_w)
    plain = chunked_softmax_ce(h, w, target, chunk)
    assert abs(got.item() - plain.item()) > 1e-2  # smoothing changes the loss


def test_label_smoothing_is_refused_with_left_out_classes():
    from recbole_sasrec_ext.layers.chunked_softmax import chunked_softmax_ce
    h, w = torch.randn(2, 3), torch.randn(5, 3)
    with pytest.raises(ValueError, match="label smoothing"):
        chunked_softmax_ce(h, w, torch.tensor([0, 1]), own=torch.tensor([[2]]),
                           own_row=torch.tensor([0, 0]), smoothing=0.1)
