"""A pure-PyTorch SASRec encoder for inference, rebuilt from a bundle without RecBole.

It holds the same modules (and state-dict keys) as
:class:`~recbole_sasrec_ext.models.transformer_recommender.TransformerRecommender` — ``embedding``,
``blocks``, ``final_norm`` — but computes only what the scores read: every block but the last runs
over the (right-padded) window, the last block only at each sequence's last real position, and
the window is as long as the longest sequence of the batch (callers group sequences by length).
This module is also what :mod:`recbole_sasrec_ext.serving.export` traces to ONNX.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_sasrec_ext.layers.attention import CausalSelfAttention
from recbole_sasrec_ext.layers.block import NormPlacement, TransformerBlock
from recbole_sasrec_ext.layers.embedding import SequenceEmbedding

#: The settings an encoder is built from (a subset of the model's config), kept in the bundle.
ENCODER_KEYS = (
    "n_items", "max_seq_length", "hidden_size", "n_layers", "n_heads", "inner_size",
    "hidden_act", "layer_norm", "layer_norm_eps", "scale_embedding", "position_order",
)


def _last_query_attention(
    attention: CausalSelfAttention, q_in: torch.Tensor, kv: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Causal self-attention output for one query per sequence.

    Parameters
    ----------
    attention : CausalSelfAttention
        The block's attention layer (its ``qkv`` and ``proj`` weights are used).
    q_in : torch.Tensor
        (B, 1, d) the query input at each sequence's last position.
    kv : torch.Tensor
        (B, L, d) the key/value input of the whole window.
    valid : torch.Tensor
        (B, L) True at positions up to the last one (the query sees exactly these).

    Returns
    -------
    torch.Tensor of shape (B, 1, d), after the output projection.
    """
    B, L, d = kv.shape
    h = attention.n_heads
    w_q, w_kv = attention.qkv.weight.split((d, 2 * d))  # (d, d), (2d, d)
    b_q, b_kv = attention.qkv.bias.split((d, 2 * d))  # (d,), (2d,)
    q = F.linear(q_in, w_q, b_q).view(B, 1, h, d // h).transpose(1, 2)  # (B, h, 1, d/h)
    k, v = F.linear(kv, w_kv, b_kv).split(d, dim=-1)  # 2 x (B, L, d)
    k = k.view(B, L, h, d // h).transpose(1, 2)  # (B, h, L, d/h)
    v = v.view(B, L, h, d // h).transpose(1, 2)  # (B, h, L, d/h)
    logits = q @ k.transpose(-1, -2) / (d // h) ** 0.5  # (B, h, 1, L)
    logits = logits.masked_fill(~valid[:, None, None, :], float("-inf"))  # (B, h, 1, L)
    y = logits.softmax(-1) @ v  # (B, h, 1, d/h)
    return attention.proj(y.transpose(1, 2).reshape(B, 1, d))  # (B, 1, d)


def last_position_block(
    block: TransformerBlock, x: torch.Tensor, last: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """A transformer block evaluated at each sequence's last real position only.

    Parameters
    ----------
    block : TransformerBlock
    x : torch.Tensor
        (B, L, d) the block input over the window.
    last : torch.Tensor
        (B,) index of each sequence's last real item.
    valid : torch.Tensor
        (B, L) True at real items.

    Returns
    -------
    torch.Tensor of shape (B, d): what ``block(x)[0][b, last[b]]`` would be.
    """
    rows = torch.arange(x.size(0), device=x.device)  # (B,)
    x_last = x[rows, last].unsqueeze(1)  # (B, 1, d)
    att = block.attention
    if block.placement is NormPlacement.PRE:
        n = block.norm1(x)  # (B, L, d)
        y = x_last + _last_query_attention(att, n[rows, last].unsqueeze(1), n, valid)  # (B, 1, d)
        y = y + block.ffn(block.norm2(y))  # (B, 1, d)
    elif block.placement is NormPlacement.POST:
        y = block.norm1(x_last + _last_query_attention(att, x_last, x, valid))  # (B, 1, d)
        y = block.norm2(y + block.ffn(y))  # (B, 1, d)
    elif block.placement is NormPlacement.GATED:
        n = block.norm1(x)  # (B, L, d)
        out = _last_query_attention(att, n[rows, last].unsqueeze(1), n, valid)  # (B, 1, d)
        y = x_last + torch.sigmoid(block.gate1(x_last)) * out  # (B, 1, d)
        y = y + torch.sigmoid(block.gate2(y)) * block.ffn(block.norm2(y))  # (B, 1, d)
    else:  # SASREC: queries LN(x), keys/values x, residual on LN(x)
        q = block.norm1(x_last)  # (B, 1, d)
        h = block.norm2(q + _last_query_attention(att, q, x, valid))  # (B, 1, d)
        y = h + block.ffn(h)  # (B, 1, d)
    return y.squeeze(1)  # (B, d)


class LastPositionEncoder(nn.Module):
    """SASRec's network for inference: scores of every item after each sequence.

    Parameters
    ----------
    settings : dict
        The :data:`ENCODER_KEYS` of a bundle's ``settings.json``.
    last_only : bool
        True (inference): the last block at each sequence's last position only. False: every
        block at every position, then the last position read (the plain forward; the reference
        of the parity tests and the "before" of the inference benchmark's steps).
    """

    def __init__(self, settings: dict, last_only: bool = True):
        super().__init__()
        self.last_only = last_only
        d = settings["hidden_size"]
        self.embedding = SequenceEmbedding(
            settings["n_items"], settings["max_seq_length"], d, 0.0,
            settings["scale_embedding"], settings["position_order"],
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(
                CausalSelfAttention(d, settings["n_heads"], 0.0), d, settings["inner_size"], 0.0,
                settings["hidden_act"], settings["layer_norm"], settings["layer_norm_eps"],
            )
            for _ in range(settings["n_layers"])
        )
        final_norm = NormPlacement(settings["layer_norm"]).final_norm
        self.final_norm = (nn.LayerNorm(d, eps=settings["layer_norm_eps"]) if final_norm
                           else nn.Identity())

    def encode(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Representation (B, d) of right-padded sequences (B, L) with ``lengths`` (B,) >= 1."""
        x, _ = self.embedding(item_seq, lengths)  # (B, L, d)
        valid = item_seq > 0  # (B, L)
        last = lengths - 1  # (B,)
        if not self.last_only:
            for block in self.blocks:
                x, _ = block(x, valid=valid)  # (B, L, d)
            rows = torch.arange(x.size(0), device=x.device)  # (B,)
            return self.final_norm(x[rows, last])  # (B, d)
        for block in self.blocks[:-1]:
            x, _ = block(x, valid=valid)  # (B, L, d)
        return self.final_norm(last_position_block(self.blocks[-1], x, last, valid))  # (B, d)

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Scores (B, n_items) of every item id (column 0 is the padding id: never use it)."""
        return self.encode(item_seq, lengths) @ self.embedding.item.weight.T  # (B, n_items)
