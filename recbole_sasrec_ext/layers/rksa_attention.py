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
- The kernel (K, Ω, its Cholesky factor, α̂, the kernel loss) does not depend on the block input:
  it is :class:`~recbole_sasrec_ext.layers.rksa_kernel.RelationKernel`, owned by this layer or,
  beyond rksa.md, computed once and shared by every block (the model's ``kernel_sharing``).
  Beyond rksa.md: ``kernel_variant`` mixes all three kernels (the paper), k_c alone, or k_i and
  k_u only.

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
from recbole_sasrec_ext.layers.rksa_kernel import (  # noqa: F401 (re-exported for callers)
    INITIAL_LENGTH_SCALE,
    KernelState,
    RelationKernel,
    causal_valid_mask,
    robust_cholesky,
    two_hop_shape,
)

SCALE_FLOOR = 1e-4
N_SCORE_PROJECTIONS = 6  # query and key projections of location ξ, scale ω and shape s
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class MsnNoise(NamedTuple):
    eps: torch.Tensor  # (S, B, L) standard normal, one per key position
    u0: torch.Tensor  # (S, B, L) standard normal, one per query position


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


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over allowed keys; rows without any allowed key are all zeros (never NaN)."""
    has_key = mask.any(-1, keepdim=True)  # (B, L, 1)
    logits = logits.masked_fill(~mask, float("-inf")).masked_fill(~has_key, 0.0)  # (B, L, L)
    return torch.softmax(logits, dim=-1) * has_key  # (B, L, L)


#: Parameters that lived on the attention layer before the kernel became its own module.
OLD_KERNEL_KEYS = ("mixture.weight", "mixture.bias", "raw_length_item", "raw_length_user")


def _rename_old_kernel_keys(module, state_dict, prefix, *_) -> None:
    """Load checkpoints written before ``kernel.`` held the kernel parameters."""
    if getattr(module, "kernel", None) is None:
        return
    for key in OLD_KERNEL_KEYS:
        if prefix + key in state_dict:
            state_dict[prefix + "kernel." + key] = state_dict.pop(prefix + key)


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
    kernel_variant : str
        Which kernels K mixes (:data:`~recbole_sasrec_ext.layers.rksa_kernel.KERNEL_VARIANTS`).
    own_kernel : bool
        True: the layer owns its :class:`RelationKernel` (``self.kernel``). False: it has none and
        :meth:`forward` must be given the ``kernel_state`` of a kernel shared by several layers.
    """

    def __init__(
        self,
        hidden_size: int,
        dropout: float,
        jitter: float = 1e-4,
        eval_samples: int = 0,
        init_length_scale: float = INITIAL_LENGTH_SCALE,
        kernel_variant: str = "mixture",
        own_kernel: bool = True,
    ) -> None:
        super().__init__()
        if eval_samples < 0:
            raise ValueError(f"eval_samples must be >= 0, got {eval_samples}")
        self.hidden_size = hidden_size
        self.eval_samples = eval_samples
        self.scores = nn.Linear(hidden_size, N_SCORE_PROJECTIONS * hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.kernel = (
            RelationKernel(hidden_size, jitter, init_length_scale, kernel_variant)
            if own_kernel else None
        )
        self.attn_dropout = nn.Dropout(dropout)
        self.register_load_state_dict_pre_hook(_rename_old_kernel_keys)

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
        item_emb: torch.Tensor | None = None,
        user_emb: torch.Tensor | None = None,
        cooc: torch.Tensor | None = None,
        noise: MsnNoise | None = None,
        kernel_state: KernelState | None = None,
    ) -> AttentionOutput:
        """Attend over the causal prefix with MSN logits.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, L, d)`` block input (queries, keys and values).
        valid : torch.Tensor
            ``(B, L)`` bool, True for real items.
        item_emb : torch.Tensor, optional
            ``(B, L, d)`` raw item embeddings e_a of the sequence (RBF kernels).
        user_emb : torch.Tensor, optional
            ``(B, d)`` user embedding u.
        cooc : torch.Tensor, optional
            ``(B, L, L)`` co-occurrence counts from ``CooccurrenceTable.block``.
        noise : MsnNoise, optional
            Explicit noise; when given the logits are sampled with it even in eval mode.
        kernel_state : KernelState, optional
            The state of a shared kernel; when given, ``item_emb``, ``user_emb`` and ``cooc``
            are not read and the layer's own kernel (if any) is not used.

        Returns
        -------
        AttentionOutput
        """
        if kernel_state is None:
            if self.kernel is None:
                raise ValueError("this layer shares a kernel: pass kernel_state")
            kernel_state = self.kernel(valid, item_emb, user_emb, cooc)
        hidden = x.shape[-1]
        mask = kernel_state.mask  # (B, L, L)
        scale = 1.0 / math.sqrt(hidden)
        q_xi, k_xi, q_om, k_om, q_s, k_s = self.scores(x).chunk(N_SCORE_PROJECTIONS, dim=-1)
        xi = q_xi @ k_xi.transpose(-1, -2) * scale  # (B, L, L)
        omega = F.softplus(q_om @ k_om.transpose(-1, -2) * scale) + SCALE_FLOOR  # (B, L, L)
        shape_score = q_s @ k_s.transpose(-1, -2) * scale  # (B, L, L)
        alpha = shape_score * kernel_state.relevance  # (B, L, L), zero outside mask

        if noise is None and (self.training or self.eval_samples > 0):
            samples = 1 if self.training else self.eval_samples
            noise = self.draw_noise(valid, samples, x.dtype)
        if noise is None:
            logits = msn_mean(xi, omega, kernel_state.omega_corr, alpha)  # (B, L, L)
            weights = masked_softmax(logits, mask)  # (B, L, L)
        else:
            chol, omega_corr = kernel_state.cholesky()  # (B, L, L) x2
            weights = torch.zeros_like(xi)  # (B, L, L)
            for eps, u0 in zip(noise.eps, noise.u0):
                logits = msn_additive_sample(xi, omega, omega_corr, alpha, eps, u0, chol)
                weights = weights + masked_softmax(logits, mask)  # (B, L, L)
            weights = weights / noise.eps.shape[0]

        values = self.value(x)  # (B, L, d)
        out = self.attn_dropout(weights) @ values  # (B, L, d)
        return AttentionOutput(out, weights, kernel_state.kernel_loss, kernel_state.mixture)
