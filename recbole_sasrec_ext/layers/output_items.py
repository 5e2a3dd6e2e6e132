"""The item side of the scores (config key ``output_embedding``), shared by SASRec and RKSA.

A score is ``query(h) · weight[i]``. Three variants:

* ``tied`` (the paper's "shared item embedding"): ``weight`` is the input item table, ``query(h)``
  is ``h``;
* ``tied_bias``: the same table plus a learned bias per item (its popularity prior), written as one
  more column of ``weight`` and a constant 1 appended to ``h`` — the losses and the chunked
  softmax see an ordinary (V, d+1) table and need no bias argument;
* ``untied``: an output table of its own (V, d), initialised as the input table.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn


class OutputEmbedding(str, Enum):
    """Values of ``output_embedding``."""

    TIED = "tied"
    TIED_BIAS = "tied_bias"
    UNTIED = "untied"


class OutputItems(nn.Module):
    """The parameters the scores add to the input item table (none for ``tied``).

    Parameters
    ----------
    n_items : int
        Item ids including the padding id 0.
    hidden_size : int
        d.
    variant : OutputEmbedding
        Which item side the scores use.
    """

    def __init__(self, n_items: int, hidden_size: int, variant: OutputEmbedding):
        super().__init__()
        self.variant = OutputEmbedding(variant)
        self.table = (nn.Embedding(n_items, hidden_size, padding_idx=0)
                      if self.variant is OutputEmbedding.UNTIED else None)
        self.bias = (nn.Parameter(torch.zeros(n_items))  # (V,)
                     if self.variant is OutputEmbedding.TIED_BIAS else None)

    def weight(self, input_table: torch.Tensor) -> torch.Tensor:
        """The (V, d) or (V, d+1) item side of the scores, given the input table (V, d)."""
        if self.table is not None:
            return self.table.weight  # (V, d)
        if self.bias is not None:
            return torch.cat([input_table, self.bias[:, None]], dim=1)  # (V, d+1)
        return input_table  # (V, d)

    def query(self, hidden: torch.Tensor) -> torch.Tensor:
        """The sequence side (..., d) or (..., d+1) of the scores for hidden states (..., d)."""
        if self.bias is None:
            return hidden
        ones = hidden.new_ones(*hidden.shape[:-1], 1)  # (..., 1)
        return torch.cat([hidden, ones], dim=-1)  # (..., d+1)

    def extra_repr(self) -> str:
        return f"variant={self.variant.value}"
