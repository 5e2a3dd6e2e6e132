"""The transformer block shared by SASRec and RKSA; only the attention layer differs."""

from __future__ import annotations

import torch
from torch import nn

from recbole_sasrec_ext.layers.attention import AttentionOutput

#: Activations of the point-wise feed-forward network.
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class PointWiseFeedForward(nn.Module):
    """``W2·act(W1·x)`` applied at every position (the paper's two 1x1 convolutions)."""

    def __init__(self, hidden_size: int, inner_size: int, dropout: float, activation: str):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden_size, inner_size),
            ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(inner_size, hidden_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, L, d)


class TransformerBlock(nn.Module):
    """Attention and feed-forward sub-layers with residuals, LayerNorm and dropout.

    ``pre_norm=True``: ``x + drop(attn(LN(x)))``, then ``x + drop(ffn(LN(x)))`` (SASRec paper);
    ``pre_norm=False``: ``LN(x + drop(attn(x)))``, then ``LN(x + drop(ffn(x)))`` (RecBole's SASRec).
    Extra keyword arguments of :meth:`forward` go to the attention layer.
    """

    def __init__(
        self,
        attention: nn.Module,
        hidden_size: int,
        inner_size: int,
        dropout: float,
        activation: str,
        pre_norm: bool,
        eps: float,
    ):
        super().__init__()
        self.attention = attention
        self.ffn = PointWiseFeedForward(hidden_size, inner_size, dropout, activation)
        self.norm1 = nn.LayerNorm(hidden_size, eps=eps)
        self.norm2 = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x: torch.Tensor, **attention_inputs) -> tuple[torch.Tensor, AttentionOutput]:
        if self.pre_norm:
            att = self.attention(self.norm1(x), **attention_inputs)
            x = x + self.dropout(att.out)  # (B, L, d)
            x = x + self.dropout(self.ffn(self.norm2(x)))  # (B, L, d)
        else:
            att = self.attention(x, **attention_inputs)
            x = self.norm1(x + self.dropout(att.out))  # (B, L, d)
            x = self.norm2(x + self.dropout(self.ffn(x)))  # (B, L, d)
        return x, att
