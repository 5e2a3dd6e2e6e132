"""Relation-aware kernelized skew attention, the attention layer of RKSA.

Mingi Ji, Weonyoung Joo, Kyungwoo Song, Yoon-Yeong Kim, Il-Chul Moon, "Sequential Recommendation
with Relation-Aware Kernelized Self-Attention", AAAI 2020, arXiv 1911.06478.

For query position t the logits z_t over keys j <= t are drawn from a multivariate skew-normal
MSN(ξ_t, diag(ω_t) Ω diag(ω_t), α_t); attention = softmax(z_t); output = Σ_j softmax(z_t)_j v_j.
The layer is single-head and returns the attended values only: residual, LayerNorm, FFN and any
output projection belong to the transformer block. Equations follow docs/rksa.md.

Choices (rksa.md's **[choice]** defaults unless marked "beyond rksa.md"):

- Location ξ_{t,j} = (x_t W_ξQ)·(x_j W_ξK)/√d; f = the causal/padding mask only.
- Scale ω_{t,j} = softplus((x_t W_ωQ)·(x_j W_ωK)/√d) + 1e-4; query t plays the paper's last
  position n.
- Kernel K = r1·k_c + r2·k_i + r3·k_u, r = softmax(u W_u + b_u) per user, all with unit diagonal:
  k_c = C[a,b]/sqrt(C[a,a]C[b,b]); k_i, k_u = RBFs on e_a and e_a⊙u with learned length-scales
  ℓ = softplus(raw) + 1e-4 (initialised at ℓ = ``init_length_scale``, default 1). Beyond rksa.md:
  an item with zero training popularity gets k_c = 0 to every other position (k_c stays a
  correlation matrix).
- Ω = K + jitter·I is the correlation matrix used both for sampling and for the mean (the
  factorised matrix and the distribution agree); padded rows/columns of K are the identity.
  Σ_t = diag(ω_t) Ω_{≤t,≤t} diag(ω_t).
- Shape α_{t,j} = s_{t,j}·α̂_j/max_{j≤t} α̂_j, α̂_j = Σ_{k≤t} c̃_{j,k} c̃_{k,t} over raw counts c,
  with c̃_{k,k} = mean of c_{k,l} over the other positions l ≤ t (beyond rksa.md: "other items" means
  other positions, so a repeated item contributes its popularity; with no other position the mean
  is 0). α_t = 0 when max α̂ = 0. α̂ carries no gradient (it is a function of counts only).
- Sampling: additive representation z0 = δ|u0| + w, w = x − δ(αᵀx)/(1 + sqrt(1 + αᵀΩα)),
  x = Lε, LLᵀ = Ω (algebraically rksa.md's c-form). One Cholesky per sequence serves every prefix.
  Beyond rksa.md: ε has shape (B, L) (one per key position, shared by all queries) and u0 has
  shape (B, L) (one per query); each row's marginal is exactly MSN, rows correlate through ε.
- Training: one sample; evaluation: the mean ξ + ω⊙δ·sqrt(2/π). Beyond rksa.md: with
  ``eval_samples = S > 0`` evaluation averages the attention *probabilities* over S draws.
- Kernel loss: pooled mean over valid causal pairs j ≤ t (diagonal included) of
  (k_i − k_c)² + (k_u − k_c)².

Deviation: if a float32 Cholesky fails, the failing sequences are refactorised in float64, then
with growing jitter. The jitter fallback depends on the whole sequence, so in that (never observed
in tests) case a prefix's factor may depend on later positions.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_sasrec_ext.layers.attention import AttentionOutput

SCALE_FLOOR = 1e-4
LENGTH_SCALE_FLOOR = 1e-4
INITIAL_LENGTH_SCALE = 1.0
N_KERNELS = 3
N_SCORE_PROJECTIONS = 6  # query and key projections of location ξ, scale ω and shape s
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CHOLESKY_RETRIES = 6
JITTER_GROWTH = 10.0


class MsnNoise(NamedTuple):
    eps: torch.Tensor  # (S, B, L) standard normal, one per key position
    u0: torch.Tensor  # (S, B, L) standard normal, one per query position


class KernelParts(NamedTuple):
    cooc: torch.Tensor  # (B, L, L) k_c, unit diagonal
    item: torch.Tensor  # (B, L, L) k_i, unit diagonal
    user: torch.Tensor  # (B, L, L) k_u, unit diagonal
    kernel: torch.Tensor  # (B, L, L) mixed K, identity on padded rows/columns


def causal_valid_mask(valid: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` validity -> ``(B, L, L)`` mask of pairs (t, j) with j <= t and both valid."""
    length = valid.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()  # (L, L)
    return causal & valid.unsqueeze(-1) & valid.unsqueeze(-2)  # (B, L, L)


def msn_delta(
    omega_corr: torch.Tensor, alpha: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """δ = Ωα/sqrt(1 + αᵀΩα) for several shape vectors sharing one correlation matrix.

    Parameters
    ----------
    omega_corr : torch.Tensor
        ``(..., n, n)`` symmetric correlation matrix Ω.
    alpha : torch.Tensor
        ``(..., m, n)`` m shape vectors (rows). With rows zero beyond t, entries ≤ t of row t equal
        the prefix quantities computed with Ω_{≤t,≤t}.

    Returns
    -------
    tuple of torch.Tensor
        δ ``(..., m, n)`` and the quadratic form αᵀΩα ``(..., m)``.
    """
    projected = alpha @ omega_corr  # (..., m, n) = (Ωα)ᵀ, Ω symmetric
    quad = (alpha * projected).sum(-1)  # (..., m)
    delta = projected / torch.sqrt(1.0 + quad).unsqueeze(-1)  # (..., m, n)
    return delta, quad


def msn_mean(
    xi: torch.Tensor, omega: torch.Tensor, omega_corr: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """Mean ξ + ω⊙δ·sqrt(2/π) of MSN(ξ, diag(ω)Ωdiag(ω), α); shapes as in msn_additive_sample."""
    delta, _ = msn_delta(omega_corr, alpha)  # (..., m, n)
    return xi + omega * delta * SQRT_2_OVER_PI  # (..., m, n)


def msn_additive_sample(
    xi: torch.Tensor,
    omega: torch.Tensor,
    omega_corr: torch.Tensor,
    alpha: torch.Tensor,
    eps_normal: torch.Tensor,
    u0: torch.Tensor,
    chol: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw z ~ MSN(ξ, diag(ω)Ωdiag(ω), α) by the additive representation (differentiable in α).

    z = ξ + ω⊙(δ|u0| + w), w = x − δ(αᵀx)/(1 + sqrt(1 + αᵀΩα)), x = Lε with LLᵀ = Ω, which gives
    Cov(w) = Ω − δδᵀ exactly.

    Parameters
    ----------
    xi, omega : torch.Tensor
        ``(..., m, n)`` location and positive scale, one row per shape vector.
    omega_corr : torch.Tensor
        ``(..., n, n)`` correlation matrix Ω (ignored when ``chol`` is given, except for δ).
    alpha : torch.Tensor
        ``(..., m, n)`` shape vectors.
    eps_normal : torch.Tensor
        ``(..., n)`` standard normal noise, shared by the m rows.
    u0 : torch.Tensor
        ``(..., m)`` standard normal noise, one per row.
    chol : torch.Tensor, optional
        ``(..., n, n)`` lower Cholesky factor of Ω; computed when omitted.

    Returns
    -------
    torch.Tensor
        ``(..., m, n)`` samples.
    """
    if chol is None:
        chol = torch.linalg.cholesky(omega_corr)  # (..., n, n)
    delta, quad = msn_delta(omega_corr, alpha)  # (..., m, n), (..., m)
    gauss = (chol @ eps_normal.unsqueeze(-1)).squeeze(-1)  # (..., n) ~ N(0, Ω)
    alpha_gauss = (alpha @ gauss.unsqueeze(-1)).squeeze(-1)  # (..., m) αᵀx per row
    coef = alpha_gauss / (1.0 + torch.sqrt(1.0 + quad))  # (..., m)
    w = gauss.unsqueeze(-2) - delta * coef.unsqueeze(-1)  # (..., m, n) ~ N(0, Ω − δδᵀ)
    z0 = delta * u0.abs().unsqueeze(-1) + w  # (..., m, n)
    return xi + omega * z0  # (..., m, n)


def robust_cholesky(matrix: torch.Tensor, jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Cholesky that never raises: retry failures in float64, then with growing jitter.

    Returns
    -------
    tuple of torch.Tensor
        The lower factor ``(..., n, n)`` and the matrix actually factorised ``(..., n, n)``.
    """
    chol, info = torch.linalg.cholesky_ex(matrix)  # (..., n, n), (...)
    failed = info != 0  # (...)
    if not bool(failed.any()):
        return chol, matrix
    if matrix.dtype != torch.float64:
        chol64, info64 = torch.linalg.cholesky_ex(matrix.double())
        chol = torch.where(failed[..., None, None], chol64.to(matrix.dtype), chol)
        failed = failed & (info64 != 0)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)  # (n, n)
    extra = jitter
    for _ in range(CHOLESKY_RETRIES):
        if not bool(failed.any()):
            break
        extra = extra * JITTER_GROWTH
        matrix = torch.where(failed[..., None, None], matrix + extra * eye, matrix)
        retry, info = torch.linalg.cholesky_ex(matrix)
        chol = torch.where(failed[..., None, None], retry, chol)
        failed = failed & (info != 0)
    return chol, matrix


def rbf_kernel(emb: torch.Tensor, length_scale: torch.Tensor) -> torch.Tensor:
    """``(B, L, d)`` -> ``(B, L, L)`` exp(−‖e_a − e_b‖²/2ℓ²), exactly symmetric, unit diagonal."""
    sq_norm = emb.pow(2).sum(-1)  # (B, L)
    sq_dist = sq_norm.unsqueeze(-1) + sq_norm.unsqueeze(-2) - 2.0 * emb @ emb.transpose(-1, -2)
    sq_dist = (0.5 * (sq_dist + sq_dist.transpose(-1, -2))).clamp_min(0.0)  # (B, L, L)
    eye = torch.eye(emb.shape[-2], dtype=torch.bool, device=emb.device)  # (L, L)
    sq_dist = sq_dist.masked_fill(eye, 0.0)  # (B, L, L)
    return torch.exp(-sq_dist / (2.0 * length_scale**2))  # (B, L, L)


def cooccurrence_kernel(cooc: torch.Tensor) -> torch.Tensor:
    """``(B, L, L)`` counts -> cosine k_c = C[a,b]/sqrt(C[a,a]C[b,b]) with unit diagonal."""
    pop = cooc.diagonal(dim1=-2, dim2=-1)  # (B, L)
    denom = torch.sqrt(pop.unsqueeze(-1) * pop.unsqueeze(-2))  # (B, L, L)
    k_c = torch.where(denom > 0, cooc / denom.clamp_min(torch.finfo(cooc.dtype).tiny), 0.0)
    eye = torch.eye(cooc.shape[-1], dtype=torch.bool, device=cooc.device)  # (L, L)
    return k_c.masked_fill(eye, 1.0)  # (B, L, L)


def two_hop_shape(cooc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Normalised two-hop relevance α̂_{t,j}/max_j α̂_{t,j} for every query t at once.

    α̂_{t,j} = Σ_{k≤t} c̃_{j,k} c̃_{k,t}, where c̃ is c with each diagonal c_{k,k} replaced by the
    mean of c_{k,l} over the other valid positions l ≤ t. Writing c° for c with zero diagonal and m for the
    replaced diagonal: α̂_{t,j} = Σ_{k≤t} c°_{j,k}c°_{k,t} + c°_{j,t}(m_t + m_j) + [j=t] m_t².

    Parameters
    ----------
    cooc : torch.Tensor
        ``(B, L, L)`` co-occurrence counts of the sequence's items.
    mask : torch.Tensor
        ``(B, L, L)`` bool from :func:`causal_valid_mask`.

    Returns
    -------
    torch.Tensor
        ``(B, L, L)`` values in [0, 1], zero outside ``mask``.
    """
    length = cooc.shape[-1]
    eye = torch.eye(length, dtype=torch.bool, device=cooc.device)  # (L, L)
    valid = mask.diagonal(dim1=-2, dim2=-1)  # (B, L)
    pair = valid.unsqueeze(-1) & valid.unsqueeze(-2)  # (B, L, L)
    off = torch.where(pair & ~eye, cooc, 0.0)  # (B, L, L) c°
    others = (valid.cumsum(-1) - 1).clamp_min(1).to(cooc.dtype)  # (B, L) other positions ≤ t
    # (B, L, L): [t, j] = Σ_{l≤t} c°_{j,l} / (#other positions ≤ t) = m_j for query t
    diag_mean = off.cumsum(-1).transpose(-1, -2) / others.unsqueeze(-1)
    m_self = diag_mean.diagonal(dim1=-2, dim2=-1)  # (B, L) m_t for query t
    prefix = torch.where(mask, off, 0.0)  # (B, L, L) [t, k] = c°_{t,k} for k ≤ t
    alpha_hat = prefix @ off  # (B, L, L) Σ_{k≤t} c°_{t,k} c°_{k,j}
    alpha_hat = alpha_hat + off * (m_self.unsqueeze(-1) + diag_mean)  # (B, L, L)
    alpha_hat = alpha_hat + torch.where(eye, m_self.pow(2).unsqueeze(-1), 0.0)  # (B, L, L)
    alpha_hat = torch.where(mask, alpha_hat, 0.0)  # (B, L, L)
    top = alpha_hat.amax(-1, keepdim=True)  # (B, L, 1)
    return torch.where(top > 0, alpha_hat / top.clamp_min(torch.finfo(cooc.dtype).tiny), 0.0)


def kernel_alignment_loss(parts: KernelParts, mask: torch.Tensor) -> torch.Tensor:
    """Pooled mean over ``mask`` pairs of (k_i − k_c)² + (k_u − k_c)²; 0 when there is no pair."""
    gap = (parts.item - parts.cooc).pow(2) + (parts.user - parts.cooc).pow(2)  # (B, L, L)
    total = torch.where(mask, gap, 0.0).sum()
    return total / mask.sum().clamp_min(1)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over allowed keys; rows without any allowed key are all zeros (never NaN)."""
    has_key = mask.any(-1, keepdim=True)  # (B, L, 1)
    logits = logits.masked_fill(~mask, float("-inf")).masked_fill(~has_key, 0.0)  # (B, L, L)
    return torch.softmax(logits, dim=-1) * has_key  # (B, L, L)


class KernelizedSkewAttention(nn.Module):
    """Single-head RKSA attention: softmax of MSN-distributed logits over the causal prefix.

    Parameters
    ----------
    hidden_size : int
        Model width d.
    dropout : float
        Dropout probability on the attention weights.
    jitter : float
        Added to the kernel's diagonal before factorising (Ω = K + jitter·I).
    eval_samples : int
        0: evaluation uses the MSN mean; S > 0: average attention over S draws.
    init_length_scale : float
        Initial RBF length-scale ℓ of k_i and k_u; pick it near the typical distance between
        item embeddings (RBFs saturate at 1 when ℓ is much larger).
    """

    def __init__(
        self,
        hidden_size: int,
        dropout: float,
        jitter: float = 1e-4,
        eval_samples: int = 0,
        init_length_scale: float = INITIAL_LENGTH_SCALE,
    ) -> None:
        super().__init__()
        if eval_samples < 0:
            raise ValueError(f"eval_samples must be >= 0, got {eval_samples}")
        if init_length_scale <= LENGTH_SCALE_FLOOR:
            raise ValueError(
                f"init_length_scale must be > {LENGTH_SCALE_FLOOR}, got {init_length_scale}"
            )
        self.hidden_size = hidden_size
        self.jitter = jitter
        self.eval_samples = eval_samples
        self.scores = nn.Linear(hidden_size, N_SCORE_PROJECTIONS * hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.mixture = nn.Linear(hidden_size, N_KERNELS)
        raw = math.log(math.expm1(init_length_scale - LENGTH_SCALE_FLOOR))  # softplus⁻¹
        self.raw_length_item = nn.Parameter(torch.tensor(raw))
        self.raw_length_user = nn.Parameter(torch.tensor(raw))
        self.attn_dropout = nn.Dropout(dropout)

    def kernels(
        self,
        valid: torch.Tensor,
        item_emb: torch.Tensor,
        user_emb: torch.Tensor,
        cooc: torch.Tensor,
    ) -> tuple[KernelParts, torch.Tensor]:
        """Return the three kernels, their per-user mixture K and the mixture weights ``(B, 3)``."""
        mixture = torch.softmax(self.mixture(user_emb), dim=-1)  # (B, 3)
        length_item = F.softplus(self.raw_length_item) + LENGTH_SCALE_FLOOR
        length_user = F.softplus(self.raw_length_user) + LENGTH_SCALE_FLOOR
        k_c = cooccurrence_kernel(cooc.to(item_emb.dtype))  # (B, L, L)
        k_i = rbf_kernel(item_emb, length_item)  # (B, L, L)
        k_u = rbf_kernel(item_emb * user_emb.unsqueeze(-2), length_user)  # (B, L, L)
        stacked = torch.stack((k_c, k_i, k_u), dim=1)  # (B, 3, L, L)
        mixed = (mixture[:, :, None, None] * stacked).sum(1)  # (B, L, L)
        pair = valid.unsqueeze(-1) & valid.unsqueeze(-2)  # (B, L, L)
        eye = torch.eye(valid.shape[-1], dtype=mixed.dtype, device=mixed.device)  # (L, L)
        kernel = torch.where(pair, mixed, eye)  # (B, L, L)
        return KernelParts(k_c, k_i, k_u, kernel), mixture

    def draw_noise(self, valid: torch.Tensor, samples: int, dtype: torch.dtype) -> MsnNoise:
        """Standard normal ε and u0, each ``(samples, B, L)``; position t's draw ignores L."""
        shape = (samples, *valid.shape)
        eps = torch.randn(shape, dtype=dtype, device=valid.device)  # (S, B, L)
        u0 = torch.randn(shape, dtype=dtype, device=valid.device)  # (S, B, L)
        return MsnNoise(eps, u0)

    def forward(
        self,
        x: torch.Tensor,
        valid: torch.Tensor,
        item_emb: torch.Tensor,
        user_emb: torch.Tensor,
        cooc: torch.Tensor,
        noise: MsnNoise | None = None,
    ) -> AttentionOutput:
        """Attend over the causal prefix with MSN logits.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, L, d)`` block input (queries, keys and values).
        valid : torch.Tensor
            ``(B, L)`` bool, True for real items.
        item_emb : torch.Tensor
            ``(B, L, d)`` raw item embeddings e_a of the sequence (RBF kernels).
        user_emb : torch.Tensor
            ``(B, d)`` user embedding u.
        cooc : torch.Tensor
            ``(B, L, L)`` co-occurrence counts from ``CooccurrenceTable.block``.
        noise : MsnNoise, optional
            Explicit noise; when given the logits are sampled with it even in eval mode.

        Returns
        -------
        AttentionOutput
        """
        length, hidden = x.shape[-2:]
        mask = causal_valid_mask(valid)  # (B, L, L)
        scale = 1.0 / math.sqrt(hidden)
        q_xi, k_xi, q_om, k_om, q_s, k_s = self.scores(x).chunk(N_SCORE_PROJECTIONS, dim=-1)
        xi = q_xi @ k_xi.transpose(-1, -2) * scale  # (B, L, L)
        omega = F.softplus(q_om @ k_om.transpose(-1, -2) * scale) + SCALE_FLOOR  # (B, L, L)
        shape_score = q_s @ k_s.transpose(-1, -2) * scale  # (B, L, L)

        parts, mixture = self.kernels(valid, item_emb, user_emb, cooc)
        eye = torch.eye(length, dtype=x.dtype, device=x.device)  # (L, L)
        omega_corr = parts.kernel + self.jitter * eye  # (B, L, L)
        relevance = two_hop_shape(cooc.to(x.dtype), mask)  # (B, L, L)
        alpha = shape_score * relevance  # (B, L, L), zero outside mask

        if noise is None and (self.training or self.eval_samples > 0):
            samples = 1 if self.training else self.eval_samples
            noise = self.draw_noise(valid, samples, x.dtype)
        if noise is None:
            logits = msn_mean(xi, omega, omega_corr, alpha)  # (B, L, L)
            weights = masked_softmax(logits, mask)  # (B, L, L)
        else:
            chol, omega_corr = robust_cholesky(omega_corr, self.jitter)  # (B, L, L)
            weights = torch.zeros_like(xi)  # (B, L, L)
            for eps, u0 in zip(noise.eps, noise.u0):
                logits = msn_additive_sample(xi, omega, omega_corr, alpha, eps, u0, chol)
                weights = weights + masked_softmax(logits, mask)  # (B, L, L)
            weights = weights / noise.eps.shape[0]

        values = self.value(x)  # (B, L, d)
        out = self.attn_dropout(weights) @ values  # (B, L, d)
        kernel_loss = kernel_alignment_loss(parts, mask)
        return AttentionOutput(out, weights, kernel_loss, mixture)
