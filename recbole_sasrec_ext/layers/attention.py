"""SASRec's causal multi-head self-attention on the fused ``scaled_dot_product_attention``."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class AttentionOutput(NamedTuple):
    """What an attention layer of the shared transformer block returns."""

    out: torch.Tensor  # (B, L, d) attended values, before the block's residual
    weights: torch.Tensor | None = None  # (B, L, L) attention probabilities, if computed
    kernel_loss: torch.Tensor | None = None  # scalar auxiliary loss (RKSA)
    mixture: torch.Tensor | None = None  # (B, 3) kernel mixture weights (RKSA)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions ≤ t.

    Sequences are right-padded (valid items first), so the causal mask alone keeps every valid
    query away from padding keys; padded queries produce values that are never used. This keeps
    the fused kernel's ``is_causal`` fast path (flash attention on GPU). ``kv`` (optional) gives
    keys and values from another tensor than the queries (the original SASRec block).
    """

    #: Accepts ``kv`` (keys/values from a different tensor than the queries).
    SEPARATE_KV = True

    def __init__(self, hidden_size: int, n_heads: int, dropout: float):
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout
        self.need_weights = False  # set by explain: compute the probabilities explicitly

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor | None = None, kv: torch.Tensor | None = None
    ) -> AttentionOutput:
        B, L, d = x.shape
        if kv is None:
            q, k, v = self.qkv(x).split(d, dim=-1)  # 3 x (B, L, d)
        else:
            w_q, w_kv = self.qkv.weight.split((d, 2 * d))  # (d, d), (2d, d)
            b_q, b_kv = self.qkv.bias.split((d, 2 * d))  # (d,), (2d,)
            q = F.linear(x, w_q, b_q)  # (B, L, d)
            k, v = F.linear(kv, w_kv, b_kv).split(d, dim=-1)  # 2 x (B, L, d)
        shape = (B, L, self.n_heads, d // self.n_heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # (B, h, L, d/h)
        if self.need_weights and not self.training:  # explicit (slow) path, for explanations
            logits = q @ k.transpose(-1, -2) / (d // self.n_heads) ** 0.5  # (B, h, L, L)
            causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()  # (L, L)
            probs = logits.masked_fill(~causal, float("-inf")).softmax(-1)  # (B, h, L, L)
            y = (probs @ v).transpose(1, 2).reshape(B, L, d)  # (B, L, d)
            return AttentionOutput(self.proj(y), probs.mean(1))  # weights averaged over heads
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, h, L, d/h)
        y = y.transpose(1, 2).reshape(B, L, d)  # (B, L, d)
        return AttentionOutput(self.proj(y))
