"""Next-item losses over every valid position of a batch of sequences.

All take the hidden states of the valid positions ``h`` (P, d), their target items ``pos`` (P,)
and the item embedding table ``items`` (n_items, d) whose row 0 is padding, and return the mean
over positions. Negatives are drawn uniformly from the items other than the padding id.
"""

from __future__ import annotations

import enum

import torch
import torch.nn.functional as F

from recbole_sasrec_ext.layers.chunked_softmax import chunked_softmax_ce


class LossType(str, enum.Enum):
    """``loss_type`` values of the plugin's sequential models."""

    BCE = "BCE"  # the SASRec paper: one sampled negative per position, binary cross-entropy
    CE = "CE"  # full softmax over all items ("SASRec+")
    SAMPLED_SOFTMAX = "SAMPLED_SOFTMAX"  # softmax over the target and k uniform negatives
    GBCE = "GBCE"  # gSASRec: k negatives per position, generalised BCE with calibration t


def sample_negatives_excluding(pos: torch.Tensor, n_items: int, k: int) -> torch.Tensor:
    """``k`` uniform negatives per position from ``1..n_items-1`` minus the position's target.

    Returns
    -------
    torch.LongTensor of shape (P, k)
    """
    neg = torch.randint(1, n_items - 1, (pos.size(0), k), device=pos.device)  # (P, k)
    return neg + (neg >= pos[:, None]).long()  # (P, k) skips the target, stays uniform


def bce_loss(h: torch.Tensor, pos: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """The SASRec paper's loss: −log σ(h·e_pos) − log(1 − σ(h·e_neg)), one negative per position."""
    neg = sample_negatives_excluding(pos, items.size(0), 1)[:, 0]  # (P,)
    pos_logit = (h * items[pos]).sum(-1)  # (P,)
    neg_logit = (h * items[neg]).sum(-1)  # (P,)
    return (F.softplus(-pos_logit) + F.softplus(neg_logit)).mean()


def ce_loss(h: torch.Tensor, pos: torch.Tensor, items: torch.Tensor,
            own_items: torch.Tensor | None = None,
            own_row: torch.Tensor | None = None, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over every item except padding; the (P, n_items-1) logits are formed a chunk
    of positions at a time (:mod:`~recbole_sasrec_ext.layers.chunked_softmax`). With
    ``own_items`` (B, M) (each row's items, 0 = padding) and ``own_row`` (P,) (each position's
    row), a position's softmax leaves out its row's items other than its target. ``smoothing``:
    label smoothing eps over the n_items-1 real items."""
    own = None if own_items is None else own_items - 1  # (B, M) classes, -1 = padding
    return chunked_softmax_ce(h, items[1:], pos - 1, own=own, own_row=own_row,
                              smoothing=smoothing)


def sampled_softmax_loss(
    h: torch.Tensor, pos: torch.Tensor, items: torch.Tensor, k: int
) -> torch.Tensor:
    """Softmax over the target and ``k`` uniform negatives shared by the batch; a negative that
    equals a position's target is masked out for that position."""
    neg = torch.randint(1, items.size(0), (k,), device=h.device)  # (k,)
    pos_logit = (h * items[pos]).sum(-1, keepdim=True)  # (P, 1)
    neg_logit = h @ items[neg].T  # (P, k)
    neg_logit = neg_logit.masked_fill(neg[None, :] == pos[:, None], float("-inf"))  # (P, k)
    logits = torch.cat([pos_logit, neg_logit], dim=1)  # (P, 1+k)
    return F.cross_entropy(logits, torch.zeros_like(pos))


def sequence_sampled_softmax_loss(
    hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor, k: int,
    own_items: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax over the target and ``k`` uniform negatives drawn for each *sequence* and shared by
    its positions (SASRec+'s and eSASRec's sampled softmax), on the padded layout.

    ``hidden`` (B, L, d) and ``targets`` (B, L) (0 = no target at that position). A negative equal
    to a position's target is masked out for that position; with ``own_items`` (B, M) (the row's
    input and target items, 0 = padding), a negative that is any of the row's items is masked out
    for the whole row. Mean over the positions with a target.
    """
    neg = torch.randint(1, items.size(0), (hidden.size(0), k), device=hidden.device)  # (B, k)
    pos_logit = (hidden * items[targets]).sum(-1, keepdim=True)  # (B, L, 1)
    neg_logit = torch.bmm(hidden, items[neg].transpose(1, 2))  # (B, L, k)
    masked = neg[:, None, :] == targets[:, :, None]  # (B, L, k)
    if own_items is not None:
        own = (neg[:, :, None] == own_items[:, None, :]).any(-1)  # (B, k)
        masked = masked | own[:, None, :]  # (B, L, k)
    neg_logit = neg_logit.masked_fill(masked, float("-inf"))  # (B, L, k)
    valid = targets > 0  # (B, L)
    logits = torch.cat([pos_logit, neg_logit], dim=-1)[valid]  # (N, 1+k)
    return F.cross_entropy(logits, torch.zeros(logits.size(0), dtype=torch.long,
                                               device=logits.device))


def gbce_loss(
    h: torch.Tensor, pos: torch.Tensor, items: torch.Tensor, k: int, t: float
) -> torch.Tensor:
    """gSASRec's generalised BCE (Petrov & Macdonald, RecSys 2023): the positive's probability is
    raised to β = α(t(1 − 1/α) + 1/α), α = k / (n_items − 2) the negative sampling rate."""
    n_candidates = items.size(0) - 2  # items other than padding and the target
    alpha = k / n_candidates
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    neg = sample_negatives_excluding(pos, items.size(0), k)  # (P, k)
    pos_logit = (h * items[pos]).sum(-1)  # (P,)
    neg_logit = torch.einsum("pd,pkd->pk", h, items[neg])  # (P, k)
    return (beta * F.softplus(-pos_logit) + F.softplus(neg_logit).sum(-1)).mean()


def next_item_loss(
    loss_type: LossType, h: torch.Tensor, pos: torch.Tensor, items: torch.Tensor,
    n_negatives: int, gbce_t: float, label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Dispatch on ``loss_type`` (``label_smoothing``: CE only)."""
    if loss_type is LossType.BCE:
        return bce_loss(h, pos, items)
    if loss_type is LossType.CE:
        return ce_loss(h, pos, items, smoothing=label_smoothing)
    if loss_type is LossType.SAMPLED_SOFTMAX:
        return sampled_softmax_loss(h, pos, items, n_negatives)
    return gbce_loss(h, pos, items, n_negatives, gbce_t)
