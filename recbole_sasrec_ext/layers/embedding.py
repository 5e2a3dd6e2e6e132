"""Item and position embeddings of a sequence (shared by SASRec and RKSA)."""

from __future__ import annotations

import math

import torch
from torch import nn


def reversed_positions(item_seq_len: torch.Tensor, max_len: int) -> torch.Tensor:
    """Position ids counted back from each sequence's most recent item (0 = most recent).

    For right-padded sequences this equals the SASRec paper's left-padded positions up to a
    relabelling of the learned table, and it does not depend on how much padding follows.
    Padding positions get id 0 (their outputs are never used).

    Returns
    -------
    torch.LongTensor of shape (B, max_len)
    """
    t = torch.arange(max_len, device=item_seq_len.device)  # (L,)
    pos = item_seq_len[:, None] - 1 - t[None, :]  # (B, L)
    return pos.clamp(min=0)


def forward_positions(item_seq_len: torch.Tensor, max_len: int) -> torch.Tensor:
    """Position ids counted from each sequence's oldest item (0 = oldest), as SASRec+ and
    SASRec.pytorch number the right-padded (SASRec+) or left-padded window. Padding positions keep
    their index (their outputs are never used).

    Returns
    -------
    torch.LongTensor of shape (B, max_len)
    """
    t = torch.arange(max_len, device=item_seq_len.device)  # (L,)
    return t[None, :].expand(item_seq_len.size(0), max_len)  # (B, L)


#: How position ids are counted (config key ``position_order``).
POSITION_ORDERS = {"from_end": reversed_positions, "from_start": forward_positions}


class SequenceEmbedding(nn.Module):
    """``x_t = E[s_t]·(√d if scale) + P[pos_t]``, then dropout; padding (id 0) embeds to zero.

    Parameters
    ----------
    n_items : int
        Number of item ids including the padding id 0.
    max_len : int
        Maximum sequence length (size of the position table).
    hidden_size : int
    dropout : float
    scale : bool
        Multiply item embeddings by √d (the SASRec paper's code does).
    position_order : str
        ``from_end`` (0 = most recent item) or ``from_start`` (0 = oldest item of the window).
    """

    def __init__(
        self,
        n_items: int,
        max_len: int,
        hidden_size: int,
        dropout: float,
        scale: bool,
        position_order: str = "from_end",
    ):
        super().__init__()
        self.item = nn.Embedding(n_items, hidden_size, padding_idx=0)
        self.position = nn.Embedding(max_len, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.scale = math.sqrt(hidden_size) if scale else 1.0
        self.max_len = max_len
        self.positions = POSITION_ORDERS[position_order]

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor):
        """Returns ``(x, e)``: the block input (B, L, d) and the raw item embeddings (B, L, d)."""
        e = self.item(item_seq)  # (B, L, d)
        pos = self.position(self.positions(item_seq_len, item_seq.size(1)))  # (B, L, d)
        x = e * self.scale + pos  # (B, L, d)
        x = x * (item_seq > 0).unsqueeze(-1)  # (B, L, d) zero at padding
        return self.dropout(x), e
