"""The transformer block shared by SASRec and RKSA; only the attention layer differs."""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn

from recbole_sasrec_ext.contract.model import separate_kv
from recbole_sasrec_ext.layers.attention import AttentionOutput

#: Activations of the point-wise feed-forward network (``swiglu``: a gated unit, below).
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swiglu": nn.SiLU}


class NormPlacement(str, Enum):
    """Where a block puts its LayerNorms and residuals (config key ``layer_norm``).

    * ``PRE`` — textbook pre-LN: ``x + drop(attn(LN(x)))``, then ``x + drop(ffn(LN(x)))``;
    * ``POST`` — ``LN(x + drop(attn(x)))``, then ``LN(x + drop(ffn(x)))`` (RecBole's SASRec);
    * ``SASREC`` — the original SASRec code (TF, and SASRec.pytorch which SASRec+ adapts):
      ``q = LN(x)``; ``h = q + attn(q, keys/values x)`` (the residual adds the *normalised*
      queries, no dropout on the attention output); ``h' = LN(h)``; ``h' + drop(ffn(h'))``.
    * ``GATED`` — eSASRec's LiGR block (Tikhonov et al., RecSys 2025; LiGR: Gupta et al. 2025):
      pre-LN sub-layers whose residual branches are gated by the stream itself,
      ``x + σ(G1·x) ⊙ drop(attn(LN(x)))``, then ``x + σ(G2·x) ⊙ drop(ffn(LN(x)))``; as the
      reference code (RecTools' ``LiGRLayers``), no final LayerNorm after the last block.
    """

    PRE = "pre"
    POST = "post"
    SASREC = "sasrec"
    GATED = "gated"

    @property
    def final_norm(self) -> bool:
        """Whether the encoder normalises the last block's output (the pre-LN structures)."""
        return self in (NormPlacement.PRE, NormPlacement.SASREC)


class PointWiseFeedForward(nn.Module):
    """``W2·act(W1·x)`` applied at every position (the paper's two 1x1 convolutions); with
    ``swiglu`` the gated unit ``W2·(silu(W1·x) ⊙ W3·x)`` of eSASRec's feed-forward
    (Shazeer 2020)."""

    def __init__(self, hidden_size: int, inner_size: int, dropout: float, activation: str):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden_size, inner_size),
            ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(inner_size, hidden_size),
        )
        self.up = nn.Linear(hidden_size, inner_size) if activation == "swiglu" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up is None:
            return self.net(x)  # (B, L, d)
        first, act, drop, second = self.net
        return second(drop(act(first(x)) * self.up(x)))  # (B, L, d)


class TransformerBlock(nn.Module):
    """Attention and feed-forward sub-layers with residuals, LayerNorm and dropout.

    ``placement`` (:class:`NormPlacement`) chooses the residual/LayerNorm structure. With
    ``SASREC`` the attention layer is called as ``attention(LN(x), kv=x, ...)`` and must accept
    ``kv`` (its class attribute ``SEPARATE_KV`` is True). Extra keyword arguments of
    :meth:`forward` go to the attention layer.
    """

    def __init__(
        self,
        attention: nn.Module,
        hidden_size: int,
        inner_size: int,
        dropout: float,
        activation: str,
        placement: NormPlacement | str,
        eps: float,
    ):
        super().__init__()
        self.placement = NormPlacement(placement)
        if self.placement is NormPlacement.SASREC and not separate_kv(attention):
            raise ValueError(
                f"layer_norm 'sasrec' needs an attention layer with separate keys/values; "
                f"{type(attention).__name__} has none"
            )
        self.attention = attention
        self.ffn = PointWiseFeedForward(hidden_size, inner_size, dropout, activation)
        self.norm1 = nn.LayerNorm(hidden_size, eps=eps)
        self.norm2 = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)
        gated = self.placement is NormPlacement.GATED
        self.gate1 = nn.Linear(hidden_size, hidden_size) if gated else None  # GATED only
        self.gate2 = nn.Linear(hidden_size, hidden_size) if gated else None

    def forward(self, x: torch.Tensor, **attention_inputs) -> tuple[torch.Tensor, AttentionOutput]:
        if self.placement is NormPlacement.PRE:
            att = self.attention(self.norm1(x), **attention_inputs)
            x = x + self.dropout(att.out)  # (B, L, d)
            x = x + self.dropout(self.ffn(self.norm2(x)))  # (B, L, d)
        elif self.placement is NormPlacement.POST:
            att = self.attention(x, **attention_inputs)
            x = self.norm1(x + self.dropout(att.out))  # (B, L, d)
            x = self.norm2(x + self.dropout(self.ffn(x)))  # (B, L, d)
        elif self.placement is NormPlacement.GATED:
            att = self.attention(self.norm1(x), **attention_inputs)
            x = x + torch.sigmoid(self.gate1(x)) * self.dropout(att.out)  # (B, L, d)
            x = x + torch.sigmoid(self.gate2(x)) * self.dropout(self.ffn(self.norm2(x)))
        else:
            q = self.norm1(x)  # (B, L, d) queries and residual
            att = self.attention(q, kv=x, **attention_inputs)
            h = self.norm2(q + att.out)  # (B, L, d)
            x = h + self.dropout(self.ffn(h))  # (B, L, d)
        return x, att
