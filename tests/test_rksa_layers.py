"""RKSA layers: MSN sampling, causality, padding, co-occurrence table, kernel, exact values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recbole_sasrec_ext.layers.cooccurrence import CooccurrenceTable
from recbole_sasrec_ext.layers.rksa_attention import (
    KernelizedSkewAttention,
    MsnNoise,
    causal_valid_mask,
    msn_additive_sample,
    msn_mean,
    robust_cholesky,
)

N_ITEMS = 9
HIDDEN = 4
JITTER = 1e-4


# ----------------------------------------------------------------------------- fixtures / helpers
def random_table(seed: int, n_items: int = N_ITEMS, n_users: int = 12, dense: bool = True):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, size=60)
    items = rng.integers(1, n_items, size=60)
    budget = 2**30 if dense else 0
    return CooccurrenceTable(n_items, users, items, dense_budget_bytes=budget)


def make_inputs(item_seq: torch.Tensor, table: CooccurrenceTable, seed: int, dtype=torch.float32):
    """x, valid, item_emb, user_emb, cooc for a (B, L) sequence; x_t depends on s_t only."""
    gen = torch.Generator().manual_seed(seed)
    emb = 0.6 * torch.randn(N_ITEMS, HIDDEN, generator=gen, dtype=dtype)
    emb[0] = 0.0
    pos = 0.3 * torch.randn(item_seq.shape[1], HIDDEN, generator=gen, dtype=dtype)
    user_emb = torch.randn(item_seq.shape[0], HIDDEN, generator=gen, dtype=dtype)
    valid = item_seq != 0
    item_emb = emb[item_seq]
    x = (item_emb + pos) * valid.unsqueeze(-1)
    cooc = table.block(item_seq).to(dtype)
    return x, valid, item_emb, user_emb, cooc


def make_layer(seed: int = 0, dropout: float = 0.0, dtype=torch.float32, **kwargs):
    torch.manual_seed(seed)
    layer = KernelizedSkewAttention(HIDDEN, dropout, jitter=JITTER, **kwargs).to(dtype)
    with torch.no_grad():  # move the length-scales away from their symmetric initial value
        layer.kernel.raw_length_item.fill_(0.3)
        layer.kernel.raw_length_user.fill_(-0.2)
    return layer


# ----------------------------------------------------------------------------- MSN sampling
CORR = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, -0.3], [0.2, -0.3, 1.0]])
XI = np.array([0.1, -0.2, 0.3])
SCALE = np.array([1.0, 0.5, 2.0])


def msn_closed_form(alpha: np.ndarray):
    delta = CORR @ alpha / math.sqrt(1.0 + alpha @ CORR @ alpha)
    mean = XI + SCALE * delta * math.sqrt(2.0 / math.pi)
    cov = np.diag(SCALE) @ (CORR - (2.0 / math.pi) * np.outer(delta, delta)) @ np.diag(SCALE)
    return mean, cov


@pytest.mark.parametrize("alpha", [[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [-4.0, 3.0, 1.0]])
def test_msn_sample_moments_match_closed_form(alpha):
    n_draws = 200_000
    alpha = np.array(alpha)
    gen = torch.Generator().manual_seed(1)
    eps = torch.randn(n_draws, 3, generator=gen, dtype=torch.float64)
    u0 = torch.randn(n_draws, 1, generator=gen, dtype=torch.float64)
    t = lambda a: torch.tensor(a, dtype=torch.float64).unsqueeze(0)
    z = msn_additive_sample(t(XI), t(SCALE), torch.tensor(CORR), t(alpha), eps, u0)  # (N, 1, 3)
    z = z.squeeze(1).numpy()
    mean, cov = msn_closed_form(alpha)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(z.mean(0) - mean), 5 * sd / math.sqrt(n_draws))
    cov_tol = 6 * np.outer(sd, sd) * math.sqrt(2.0 / n_draws)
    np.testing.assert_array_less(np.abs(np.cov(z.T) - cov), cov_tol)
    if not alpha.any():  # Gaussian: covariance diag(ω) Ω diag(ω), mean ξ
        np.testing.assert_allclose(cov, np.diag(SCALE) @ CORR @ np.diag(SCALE))
        np.testing.assert_allclose(mean, XI)
    closed_mean = msn_mean(t(XI), t(SCALE), torch.tensor(CORR), t(alpha))
    np.testing.assert_allclose(closed_mean.squeeze(0).numpy(), mean, rtol=1e-12)


def test_msn_sample_is_differentiable_in_alpha():
    gen = torch.Generator().manual_seed(2)
    alpha = torch.tensor([[1.0, -0.5, 2.0]], dtype=torch.float64, requires_grad=True)
    eps = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    u0 = torch.randn(64, 1, generator=gen, dtype=torch.float64)
    xi = torch.zeros(1, 3, dtype=torch.float64)
    scale = torch.ones(1, 3, dtype=torch.float64)
    z = msn_additive_sample(xi, scale, torch.tensor(CORR), alpha, eps, u0)
    (grad,) = torch.autograd.grad(z.pow(2).sum(), alpha)
    assert torch.all(grad.abs() > 1e-6)


# ----------------------------------------------------------------------------- causality
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_outputs_at_t_ignore_later_positions(mode):
    table = random_table(3)
    layer = make_layer(dropout=0.2 if mode == "train" else 0.0)
    layer.train(mode == "train")
    base = torch.tensor([[3, 1, 4, 1, 5, 8], [2, 6, 5, 3, 0, 0]])
    gen = torch.Generator().manual_seed(4)

    def run(seq, x_noise):
        x, valid, item_emb, user_emb, cooc = make_inputs(seq, table, seed=5)
        torch.manual_seed(123)
        return layer(x + x_noise * valid.unsqueeze(-1), valid, item_emb, user_emb, cooc)

    zeros = torch.zeros(2, 6, HIDDEN)
    ref = run(base, zeros)
    for t in range(5):
        changed = base.clone()
        changed[:, t + 1 :] = torch.randint(1, N_ITEMS, changed[:, t + 1 :].shape, generator=gen)
        changed[1, 4:] = 0  # keep the second sequence's padding where it was
        x_noise = zeros.clone()
        x_noise[:, t + 1 :] = torch.randn(2, 5 - t, HIDDEN, generator=gen)
        other = run(changed, x_noise)
        torch.testing.assert_close(other.out[:, : t + 1], ref.out[:, : t + 1], rtol=0, atol=1e-6)
        torch.testing.assert_close(
            other.weights[:, : t + 1], ref.weights[:, : t + 1], rtol=0, atol=1e-6
        )
    assert not torch.equal(other.out, ref.out)  # the change did reach later positions


# ----------------------------------------------------------------------------- padding
def test_more_right_padding_changes_nothing_in_eval():
    table = random_table(6)
    layer = make_layer().eval()
    short = torch.tensor([[3, 1, 4, 1, 5], [2, 6, 5, 0, 0]])
    long = torch.cat([short, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    x_s, valid_s, emb_s, user, cooc_s = make_inputs(short, table, seed=7)
    x_l, valid_l, emb_l, _, cooc_l = make_inputs(long, table, seed=7)
    x_l[:, :5] = x_s  # same inputs on the shared positions (positional draws differ in length)
    a = layer(x_s, valid_s, emb_s, user, cooc_s)
    b = layer(x_l, valid_l, emb_l, user, cooc_l)
    torch.testing.assert_close(b.out[:, :5], a.out, rtol=0, atol=1e-6)
    torch.testing.assert_close(b.weights[:, :5, :5], a.weights, rtol=0, atol=1e-6)
    torch.testing.assert_close(b.kernel_loss, a.kernel_loss, rtol=1e-6, atol=1e-7)
    pad_keys = ~valid_l.unsqueeze(1).expand(-1, 8, -1)  # (B, L, L) padded key columns
    assert torch.all(b.weights[pad_keys] == 0)
    assert torch.all(b.out[~valid_l] == 0)  # fully padded query rows give zeros
    assert torch.all(b.weights.triu(1) == 0)  # and no future key ever gets weight
    for t in (a, b):
        assert all(torch.isfinite(v).all() for v in t)


def test_padding_is_nan_free_with_gradients_in_train():
    table = random_table(8)
    layer = make_layer(dropout=0.1).train()
    seq = torch.tensor([[3, 3, 3, 5, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0]])
    x, valid, item_emb, user_emb, cooc = make_inputs(seq, table, seed=9)
    torch.manual_seed(0)
    res = layer(x, valid, item_emb, user_emb, cooc)
    assert all(torch.isfinite(v).all() for v in res)
    assert torch.all(res.out[1] == 0) and torch.all(res.weights[1] == 0)
    (res.out.sum() + res.kernel_loss).backward()
    grads = [p.grad for p in layer.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert (layer.kernel.raw_length_item.grad.abs() > 0
            and layer.kernel.mixture.weight.grad.abs().sum() > 0)


# ----------------------------------------------------------------------------- co-occurrence table
@pytest.mark.parametrize("dense", [True, False])
def test_cooccurrence_hand_example(dense):
    # user 0: {1, 2} (item 1 twice), user 1: {1, 2, 3}, user 7: {3}; item 4 never seen
    users = np.array([0, 0, 0, 1, 1, 1, 7])
    items = np.array([1, 2, 1, 2, 1, 3, 3])
    table = CooccurrenceTable(5, users, items, dense_budget_bytes=2**20 if dense else 0)
    assert table.is_dense == dense
    c = np.zeros((5, 5), dtype=np.float32)
    c[1, 1], c[2, 2], c[3, 3] = 2, 2, 2
    c[1, 2] = c[2, 1] = 2
    c[1, 3] = c[3, 1] = c[2, 3] = c[3, 2] = 1
    seq = torch.tensor([[1, 2, 3, 4, 0], [3, 3, 1, 0, 0]])
    block = table.block(seq)
    expected = np.stack([c[s][:, s] for s in seq.numpy()])
    np.testing.assert_array_equal(block.numpy(), expected)
    assert block.dtype == torch.float32
    np.testing.assert_array_equal(table.popularity.numpy(), np.diag(c))


def test_cooccurrence_sparse_and_dense_agree():
    dense = random_table(10, n_items=40, dense=True)
    sparse = random_table(10, n_items=40, dense=False)
    seq = torch.randint(0, 40, (6, 11), generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(sparse.block(seq), dense.block(seq), rtol=0, atol=0)
    full = torch.arange(40).unsqueeze(0)
    torch.testing.assert_close(sparse.block(full), dense.block(full), rtol=0, atol=0)
    assert dense.block(full)[0, 0].abs().sum() == 0  # padding row


def test_unseen_items_have_zero_rows():
    users = np.array([0, 0, 1, 1, 2])
    items = np.array([1, 2, 2, 3, 1])  # items 4..6 only appear in held-out data
    for budget in (2**20, 0):
        table = CooccurrenceTable(7, users, items, dense_budget_bytes=budget)
        block = table.block(torch.arange(7).unsqueeze(0))[0]  # (7, 7)
        assert torch.all(block[4:] == 0) and torch.all(block[:, 4:] == 0)
        assert torch.all(block[1:4, 1:4].diagonal() > 0)


def test_cooccurrence_lives_in_state_dict_and_rejects_bad_ids():
    table = random_table(12)
    other = CooccurrenceTable(N_ITEMS, np.array([0]), np.array([1]))  # same shape, other counts
    other.load_state_dict(table.state_dict())
    seq = torch.arange(N_ITEMS).unsqueeze(0)
    torch.testing.assert_close(other.block(seq), table.block(seq))
    assert {"keys", "values", "popularity"} <= set(random_table(12, dense=False).state_dict())
    with pytest.raises(ValueError, match="item ids"):
        CooccurrenceTable(5, np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="item ids"):
        CooccurrenceTable(5, np.array([0]), np.array([5]))


# ----------------------------------------------------------------------------- kernel matrix
def test_kernel_is_a_correlation_matrix():
    table = random_table(13)
    layer = make_layer()
    seq = torch.tensor([[3, 1, 4, 1, 5, 8, 2], [2, 6, 5, 3, 0, 0, 0]])
    _, valid, item_emb, user_emb, cooc = make_inputs(seq, table, seed=14)
    parts, mixture = layer.kernel.parts(valid, item_emb, user_emb, cooc)
    torch.testing.assert_close(mixture.sum(-1), torch.ones(2))
    for k in (*parts,):
        torch.testing.assert_close(k, k.transpose(-1, -2), rtol=0, atol=0)
        assert torch.linalg.eigvalsh(k.double()).min() >= -1e-5
        torch.testing.assert_close(k.diagonal(dim1=-2, dim2=-1), torch.ones(2, 7))
    pad = ~(valid.unsqueeze(-1) & valid.unsqueeze(-2)) & ~torch.eye(7, dtype=torch.bool)
    assert torch.all(parts.kernel[pad] == 0)


def test_cholesky_succeeds_with_repeated_items():
    table = random_table(15)
    layer = make_layer().train()
    seq = torch.tensor([[3, 3, 3, 5, 5, 3]])
    x, valid, item_emb, user_emb, cooc = make_inputs(seq, table, seed=16)
    parts, _ = layer.kernel.parts(valid, item_emb, user_emb, cooc)
    assert torch.linalg.eigvalsh(parts.kernel.double()).min() < 1e-6  # singular without jitter
    omega_corr = parts.kernel + JITTER * torch.eye(6)
    _, info = torch.linalg.cholesky_ex(omega_corr)
    assert torch.all(info == 0)
    torch.manual_seed(0)
    res = layer(x, valid, item_emb, user_emb, cooc)
    assert torch.isfinite(res.out).all()


def test_robust_cholesky_never_raises():
    bad = torch.tensor([[[1.0, 1.2], [1.2, 1.0]], [[1.0, 0.5], [0.5, 1.0]]])  # first indefinite
    chol, used = robust_cholesky(bad, JITTER)
    assert torch.isfinite(chol).all()
    torch.testing.assert_close(chol @ chol.transpose(-1, -2), used)
    torch.testing.assert_close(used[1], bad[1], rtol=0, atol=0)  # healthy rows untouched
    assert used[0, 0, 0] > bad[0, 0, 0]


def test_robust_cholesky_prefers_float64_over_extra_jitter():
    gen = torch.Generator().manual_seed(22)
    for _ in range(200):  # a float32 matrix that float32 cannot factorise but float64 can
        basis, _ = torch.linalg.qr(torch.randn(12, 12, generator=gen, dtype=torch.float64))
        eigen = 3 * torch.rand(12, generator=gen, dtype=torch.float64)
        eigen[0] = 3e-8
        matrix = ((basis * eigen) @ basis.T).float()
        matrix = 0.5 * (matrix + matrix.T)
        fails32 = torch.linalg.cholesky_ex(matrix)[1] != 0
        if fails32 and torch.linalg.cholesky_ex(matrix.double())[1] == 0:
            break
    else:
        pytest.skip("this BLAS factorises every candidate in float32")
    chol, used = robust_cholesky(matrix.unsqueeze(0), JITTER)
    torch.testing.assert_close(used[0], matrix, rtol=0, atol=0)  # no jitter was added
    torch.testing.assert_close(chol[0] @ chol[0].T, matrix, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- exact values
def softplus(v):
    return math.log1p(math.exp(v))


def reference_forward(layer, x, valid, item_emb, user_emb, cooc, noise=None):
    """Per-(b, t) loops straight from the equations of docs/rksa.md, in float64 numpy."""
    f64 = lambda v: v.detach().double().numpy()
    x, item_emb, user_emb, cooc = f64(x), f64(item_emb), f64(user_emb), f64(cooc)
    valid = valid.numpy()
    w, b = f64(layer.scores.weight), f64(layer.scores.bias)
    proj = x @ w.T + b
    q_xi, k_xi, q_om, k_om, q_s, k_s = np.split(proj, 6, axis=-1)
    values = x @ f64(layer.value.weight).T + f64(layer.value.bias)
    len_i = softplus(layer.kernel.raw_length_item.item()) + 1e-4
    len_u = softplus(layer.kernel.raw_length_user.item()) + 1e-4
    n_batch, n_len, d = x.shape
    out = np.zeros_like(x)
    weights = np.zeros((n_batch, n_len, n_len))
    gap_sum, gap_count = 0.0, 0
    mixtures = []
    for bi in range(n_batch):
        logit_r = f64(layer.kernel.mixture.weight) @ user_emb[bi] + f64(layer.kernel.mixture.bias)
        r = np.exp(logit_r) / np.exp(logit_r).sum()
        mixtures.append(r)
        c = cooc[bi]

        def kernels(i, j):
            if i == j:
                return 1.0, 1.0, 1.0
            kc = c[i, j] / math.sqrt(c[i, i] * c[j, j]) if c[i, i] * c[j, j] > 0 else 0.0
            ki = math.exp(-np.sum((item_emb[bi, i] - item_emb[bi, j]) ** 2) / (2 * len_i**2))
            eu_i, eu_j = item_emb[bi, i] * user_emb[bi], item_emb[bi, j] * user_emb[bi]
            ku = math.exp(-np.sum((eu_i - eu_j) ** 2) / (2 * len_u**2))
            return kc, ki, ku

        for t in range(n_len):
            if not valid[bi, t]:
                continue
            keys = [j for j in range(t + 1) if valid[bi, j]]
            n = len(keys)
            kern = np.zeros((n, n))
            for a, i in enumerate(keys):
                for e, j in enumerate(keys):
                    kc, ki, ku = kernels(i, j)
                    kern[a, e] = r[0] * kc + r[1] * ki + r[2] * ku
            omega_corr = kern + JITTER * np.eye(n)

            def ctil(a, e):
                if a != e:
                    return c[a, e]
                others = [c[a, l] for l in keys if l != a]
                return float(np.mean(others)) if others else 0.0

            ahat = np.array([sum(ctil(j, k) * ctil(k, t) for k in keys) for j in keys])
            s = np.array([q_s[bi, t] @ k_s[bi, j] / math.sqrt(d) for j in keys])
            alpha = s * ahat / ahat.max() if ahat.max() > 0 else np.zeros(n)
            xi = np.array([q_xi[bi, t] @ k_xi[bi, j] / math.sqrt(d) for j in keys])
            om = np.array([softplus(q_om[bi, t] @ k_om[bi, j] / math.sqrt(d)) + 1e-4 for j in keys])
            quad = alpha @ omega_corr @ alpha
            delta = omega_corr @ alpha / math.sqrt(1 + quad)
            if noise is None:
                z = xi + om * delta * math.sqrt(2 / math.pi)
            else:  # rksa.md's c-form of the additive representation
                eps, u0 = f64(noise.eps)[0, bi], f64(noise.u0)[0, bi]
                gauss = np.linalg.cholesky(omega_corr) @ eps[keys]
                q = quad / (1 + quad)
                coef = (1 - math.sqrt(1 - q)) / q if q > 0 else 0.5
                wvec = gauss - coef * delta * (alpha @ gauss) / math.sqrt(1 + quad)
                z = xi + om * (delta * abs(u0[t]) + wvec)
            p = np.exp(z - z.max())
            p /= p.sum()
            weights[bi, t, keys] = p
            out[bi, t] = p @ values[bi, keys]
            for j in keys:
                kc, ki, ku = kernels(t, j)
                gap_sum += (ki - kc) ** 2 + (ku - kc) ** 2
                gap_count += 1
    return out, weights, gap_sum / gap_count, np.array(mixtures)


def exact_case(dtype):
    table = random_table(17)
    seq = torch.tensor([[3, 1, 4, 1, 5], [2, 6, 5, 0, 0], [7, 0, 0, 0, 0]])
    layer = make_layer(seed=18, dtype=dtype)
    return layer, make_inputs(seq, table, seed=19, dtype=dtype)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_eval_forward_matches_per_position_reference(dtype, tol):
    layer, inputs = exact_case(dtype)
    res = layer.eval()(*inputs)
    out, weights, loss, mixture = reference_forward(layer, *inputs)
    np.testing.assert_allclose(res.out.detach().double().numpy(), out, rtol=0, atol=tol)
    np.testing.assert_allclose(res.weights.detach().double().numpy(), weights, rtol=0, atol=tol)
    np.testing.assert_allclose(res.kernel_loss.item(), loss, rtol=tol * 10)
    np.testing.assert_allclose(res.mixture.detach().double().numpy(), mixture, rtol=tol * 10)
    assert not np.allclose(weights[0, 4, :5], weights[0, 4, :5].mean())  # non-trivial case


def test_train_sample_matches_per_position_reference():
    layer, inputs = exact_case(torch.float64)
    valid = inputs[1]
    gen = torch.Generator().manual_seed(20)
    noise = MsnNoise(
        torch.randn(1, *valid.shape, generator=gen, dtype=torch.float64),
        torch.randn(1, *valid.shape, generator=gen, dtype=torch.float64),
    )
    res = layer.train()(*inputs, noise=noise)
    out, weights, _, _ = reference_forward(layer, *inputs, noise=noise)
    np.testing.assert_allclose(res.weights.detach().numpy(), weights, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.out.detach().numpy(), out, rtol=0, atol=1e-10)
    mean_weights = reference_forward(layer, *inputs)[1]
    assert np.abs(weights - mean_weights).max() > 1e-3  # the sample is not the mean


def test_eval_samples_average_single_draws():
    layer, inputs = exact_case(torch.float64)
    layer.eval_samples = 3
    layer.eval()
    torch.manual_seed(21)
    averaged = layer(*inputs).weights
    torch.manual_seed(21)
    noise = layer.draw_noise(inputs[1], 3, torch.float64)
    singles = [layer(*inputs, noise=MsnNoise(noise.eps[s : s + 1], noise.u0[s : s + 1])).weights
               for s in range(3)]
    torch.testing.assert_close(averaged, sum(singles) / 3)
    mask = causal_valid_mask(inputs[1])
    torch.testing.assert_close(averaged.sum(-1), mask.any(-1).double())


def test_constructor_sets_length_scale_and_validates():
    layer = KernelizedSkewAttention(HIDDEN, 0.0, init_length_scale=0.5)
    softplus_raw = torch.nn.functional.softplus(layer.kernel.raw_length_item) + 1e-4
    torch.testing.assert_close(softplus_raw, torch.tensor(0.5))
    with pytest.raises(ValueError, match="eval_samples"):
        KernelizedSkewAttention(HIDDEN, 0.0, eval_samples=-1)
