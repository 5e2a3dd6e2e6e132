"""RKSA's relation kernel: the per-user kernel mixture K over a sequence's items, its factor and
the two-hop shape relevance; one per attention layer or one shared by every block.

K = Σ_v r_v·k_v over the kernels of a variant (:data:`KERNEL_VARIANTS`), r = softmax(u W + b) per
user, all kernels with unit diagonal:

- k_c (co-occurrence) = C[a,b]/sqrt(C[a,a]C[b,b]), the cosine of the item–user incidence vectors;
- k_i (item) = exp(−‖e_a − e_b‖²/2ℓ_i²), an RBF on the item embeddings;
- k_u (user) = exp(−‖e_a⊙u − e_b⊙u‖²/2ℓ_u²), an RBF on user-conditioned item embeddings;

ℓ = softplus(raw) + 1e-4, learned, initialised at ``init_length_scale``. Padded rows/columns of K
are the identity. Ω = K + jitter·I is the correlation matrix of the skew-normal logits
(:mod:`recbole_sasrec_ext.layers.rksa_attention`). None of these depends on the block input, so
one :class:`RelationKernel` can serve every block (config key ``kernel_sharing: shared``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

LENGTH_SCALE_FLOOR = 1e-4
INITIAL_LENGTH_SCALE = 1.0
CHOLESKY_RETRIES = 6
JITTER_GROWTH = 10.0

#: The kernels a variant mixes, by name (config key ``kernel_variant``). ``mixture`` is the paper's.
KERNEL_VARIANTS: dict[str, tuple[str, ...]] = {
    "mixture": ("co-occurrence", "item", "user"),
    "cooccurrence": ("co-occurrence",),
    "learned": ("item", "user"),
}
LEARNED_KERNELS = ("item", "user")


class KernelParts(NamedTuple):
    cooc: torch.Tensor  # (B, L, L) k_c, unit diagonal
    item: torch.Tensor | None  # (B, L, L) k_i, unit diagonal; None when the variant has no k_i
    user: torch.Tensor | None  # (B, L, L) k_u, unit diagonal; None when the variant has no k_u
    kernel: torch.Tensor  # (B, L, L) mixed K, identity on padded rows/columns


def causal_valid_mask(valid: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` validity -> ``(B, L, L)`` mask of pairs (t, j) with j <= t and both valid."""
    length = valid.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()  # (L, L)
    return causal & valid.unsqueeze(-1) & valid.unsqueeze(-2)  # (B, L, L)


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
    mean of c_{k,l} over the other valid positions l ≤ t. Writing c° for c with zero diagonal and m
    for the replaced diagonal: α̂_{t,j} = Σ_{k≤t} c°_{j,k}c°_{k,t} + c°_{j,t}(m_t + m_j)
    + [j=t] m_t².

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
    """Pooled mean over ``mask`` pairs of Σ over the learned kernels k of (k − k_c)²; 0 when there
    is no pair or no learned kernel."""
    gap = torch.zeros_like(parts.cooc)  # (B, L, L)
    for learned in (parts.item, parts.user):
        if learned is not None:
            gap = gap + (learned - parts.cooc).pow(2)  # (B, L, L)
    total = torch.where(mask, gap, 0.0).sum()
    return total / mask.sum().clamp_min(1)


@dataclass
class KernelState:
    """Everything about a batch's kernel that the attention needs, computed once per kernel.

    ``cholesky`` factorises Ω on first use and caches the factor, so blocks sharing one kernel
    share one factorisation too.
    """

    mask: torch.Tensor  # (B, L, L) causal and valid pairs
    parts: KernelParts
    mixture: torch.Tensor  # (B, n_kernels) weights r
    omega_corr: torch.Tensor  # (B, L, L) Ω = K + jitter·I
    relevance: torch.Tensor  # (B, L, L) two-hop α̂/max α̂
    kernel_loss: torch.Tensor  # scalar
    jitter: float
    _factor: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def cholesky(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The lower factor of Ω and the matrix actually factorised
        (see :func:`robust_cholesky`)."""
        if self._factor is None:
            self._factor = robust_cholesky(self.omega_corr, self.jitter)  # (B, L, L) x2
        return self._factor


class RelationKernel(nn.Module):
    """The learned part of RKSA's kernel: the mixture weights and the RBF length-scales.

    Parameters
    ----------
    hidden_size : int
        Width d of the user embedding (input of the mixture weights).
    jitter : float
        Added to the kernel's diagonal before factorising (Ω = K + jitter·I).
    init_length_scale : float
        Initial RBF length-scale ℓ of k_i and k_u; pick it near the typical distance between
        item embeddings (RBFs saturate at 1 when ℓ is much larger).
    variant : str
        Which kernels K mixes, a key of :data:`KERNEL_VARIANTS`.
    """

    def __init__(
        self,
        hidden_size: int,
        jitter: float = 1e-4,
        init_length_scale: float = INITIAL_LENGTH_SCALE,
        variant: str = "mixture",
    ) -> None:
        super().__init__()
        if init_length_scale <= LENGTH_SCALE_FLOOR:
            raise ValueError(
                f"init_length_scale must be > {LENGTH_SCALE_FLOOR}, got {init_length_scale}"
            )
        if variant not in KERNEL_VARIANTS:
            raise ValueError(
                f"kernel variant must be one of {sorted(KERNEL_VARIANTS)}, got {variant!r}"
            )
        self.jitter = jitter
        self.names = KERNEL_VARIANTS[variant]
        self.mixture = nn.Linear(hidden_size, len(self.names))
        raw = math.log(math.expm1(init_length_scale - LENGTH_SCALE_FLOOR))  # softplus⁻¹
        self.raw_length_item = nn.Parameter(torch.tensor(raw)) if "item" in self.names else None
        self.raw_length_user = nn.Parameter(torch.tensor(raw)) if "user" in self.names else None

    def length_scales(self) -> dict[str, float]:
        """The current length-scales ℓ of the variant's learned kernels, by kernel name."""
        raws = {"item": self.raw_length_item, "user": self.raw_length_user}
        return {n: float(F.softplus(r.detach())) + LENGTH_SCALE_FLOOR
                for n, r in raws.items() if r is not None}

    def parts(
        self, valid: torch.Tensor, item_emb: torch.Tensor, user_emb: torch.Tensor,
        cooc: torch.Tensor,
    ) -> tuple[KernelParts, torch.Tensor]:
        """The kernels, their per-user mixture K and the mixture weights ``(B, n_kernels)``."""
        mixture = torch.softmax(self.mixture(user_emb), dim=-1)  # (B, n)
        k_c = cooccurrence_kernel(cooc.to(item_emb.dtype))  # (B, L, L)
        k_i = k_u = None
        if self.raw_length_item is not None:
            length_item = F.softplus(self.raw_length_item) + LENGTH_SCALE_FLOOR
            k_i = rbf_kernel(item_emb, length_item)  # (B, L, L)
        if self.raw_length_user is not None:
            length_user = F.softplus(self.raw_length_user) + LENGTH_SCALE_FLOOR
            k_u = rbf_kernel(item_emb * user_emb.unsqueeze(-2), length_user)  # (B, L, L)
        by_name = {"co-occurrence": k_c, "item": k_i, "user": k_u}
        stacked = torch.stack([by_name[n] for n in self.names], dim=1)  # (B, n, L, L)
        mixed = (mixture[:, :, None, None] * stacked).sum(1)  # (B, L, L)
        pair = valid.unsqueeze(-1) & valid.unsqueeze(-2)  # (B, L, L)
        eye = torch.eye(valid.shape[-1], dtype=mixed.dtype, device=mixed.device)  # (L, L)
        kernel = torch.where(pair, mixed, eye)  # (B, L, L)
        return KernelParts(k_c, k_i, k_u, kernel), mixture

    def forward(
        self, valid: torch.Tensor, item_emb: torch.Tensor, user_emb: torch.Tensor,
        cooc: torch.Tensor,
    ) -> KernelState:
        """The kernel state of a batch: ``valid`` (B, L), ``item_emb`` (B, L, d), ``user_emb``
        (B, d), ``cooc`` (B, L, L) co-occurrence counts."""
        mask = causal_valid_mask(valid)  # (B, L, L)
        parts, mixture = self.parts(valid, item_emb, user_emb, cooc)
        eye = torch.eye(valid.shape[-1], dtype=item_emb.dtype, device=item_emb.device)  # (L, L)
        omega_corr = parts.kernel + self.jitter * eye  # (B, L, L)
        relevance = two_hop_shape(cooc.to(item_emb.dtype), mask)  # (B, L, L)
        loss = kernel_alignment_loss(parts, mask)
        return KernelState(mask, parts, mixture, omega_corr, relevance, loss, self.jitter)
