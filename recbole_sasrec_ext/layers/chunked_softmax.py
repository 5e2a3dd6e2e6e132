"""Full-softmax cross-entropy over every item, computed in chunks of positions.

``F.cross_entropy(h @ W.T, t)`` materialises the (P, n_items) logits, keeps them (and the
log-softmax) for the backward pass and walks them again there: on a CPU, with P ≈ 1,000 positions
and 12,000 items, that is 50 MB written and read five or six times per step, out of cache. Here the
logits of ``chunk`` positions at a time are turned into the softmax gradient in place
(``softmax - onehot``) while they are still in cache, and the gradients of ``h`` and ``W`` are
accumulated in the forward pass; the backward pass only scales them. The value and the gradients
equal the unfused ones up to float rounding (tests/test_losses.py).
"""

from __future__ import annotations

import torch

#: Positions per chunk: 128 x 12,000 items x 4 bytes = 6 MB of logits, reused for every chunk.
DEFAULT_CHUNK = 128


#: Below this softmax probability of the target, ``-log p`` is recomputed from the logits (the
#: float32 softmax loses precision near its underflow, about 1e-38); above it ``-log p`` equals
#: ``logsumexp - target logit`` to float rounding.
_TINY = 1e-30


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean over positions of ``logsumexp(h W^T) - h·W[target]``; gradients made in forward.

    Per chunk: one matmul for the logits, torch's fused softmax in place (one kernel: max,
    exp and sum, scale; the loss of a position is ``-log`` of its target's probability), the
    one-hot subtracted, and two matmuls for the gradients of ``h`` and ``W``."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, target: torch.Tensor, chunk: int,
                own: torch.Tensor | None, own_row: torch.Tensor | None, smoothing: float):
        n, _ = h.shape  # (P, d)
        n_classes = w.size(0)
        grad_h = torch.empty_like(h)  # (P, d)
        grad_w = torch.zeros_like(w)  # (V, d)
        needs_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total = h.new_zeros((), dtype=torch.float64)
        buffer = h.new_empty((min(chunk, n), w.size(0)))  # (c, V) reused by every chunk
        w_mean = w.mean(0) if smoothing else None  # (d,) the mean logit of h is h · w_mean
        for start in range(0, n, chunk):
            hc, tc = h[start:start + chunk], target[start:start + chunk]  # (c, d), (c,)
            c = hc.size(0)
            rows = torch.arange(c, device=h.device)  # (c,)
            left_out = None if own is None else _left_out(own, own_row[start:start + c], tc)
            logits = _logits(hc, w, tc, left_out, buffer[:c])  # (c, V)
            if smoothing:  # loss + eps * (target logit - mean logit), read before softmax
                spread = (logits[rows, tc] - hc @ w_mean).double() * smoothing  # (c,)
            probs = torch.ops.aten._softmax.out(logits, 1, False, out=logits)  # (c, V) in place
            target_prob = probs[rows, tc]  # (c,)
            losses = -target_prob.double().log()  # (c,)
            tiny = target_prob < _TINY  # (c,) recomputed exactly: logsumexp - target logit
            if bool(tiny.any()):
                exact = _logits(hc[tiny], w, tc[tiny],
                                None if left_out is None else left_out[tiny])  # (t, V)
                losses[tiny] = (exact.logsumexp(1) - exact[torch.arange(exact.size(0),
                                device=h.device), tc[tiny]]).double()  # (t,)
            total += losses.sum() + (spread.sum() if smoothing else 0.0)
            if needs_grad:
                probs[rows, tc] -= 1.0 - smoothing  # (c, V) d loss_sum / d logits, but eps/V
                torch.mm(probs, w, out=grad_h[start:start + c])  # (c, d)
                grad_w.addmm_(probs.t(), hc)  # (V, d)
        if smoothing and needs_grad:  # the label's uniform eps/V as rank-one terms, added once
            grad_h -= smoothing * w_mean  # (P, d)
            grad_w -= (smoothing / n_classes) * h.sum(0)  # (V, d)
        ctx.save_for_backward(grad_h.div_(n), grad_w.div_(n))
        return (total / n).to(h.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_out, grad_w * grad_out, None, None, None, None, None


def _left_out(own: torch.Tensor, own_row: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The classes each position leaves out of its softmax (c, M): its row's own classes, with
    padding (-1) and the position's own target replaced by the target (which is restored)."""
    classes = own.index_select(0, own_row)  # (c, M)
    return torch.where(classes < 0, target[:, None], classes)  # (c, M)


def _logits(h: torch.Tensor, w: torch.Tensor, target: torch.Tensor,
            left_out: torch.Tensor | None, out: torch.Tensor | None = None) -> torch.Tensor:
    """``h @ w.T`` (c, V), with the ``left_out`` classes (c, M) at -inf except each target."""
    logits = torch.mm(h, w.t(), out=out) if out is not None else torch.mm(h, w.t())  # (c, V)
    if left_out is not None:
        rows = torch.arange(h.size(0), device=h.device)  # (c,)
        target_logit = logits[rows, target]  # (c,) a copy
        logits.scatter_(1, left_out, float("-inf"))  # (c, V)
        logits[rows, target] = target_logit
    return logits


def chunked_softmax_ce(
    h: torch.Tensor, w: torch.Tensor, target: torch.Tensor, chunk: int = DEFAULT_CHUNK,
    own: torch.Tensor | None = None, own_row: torch.Tensor | None = None,
    smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean cross-entropy of ``softmax(h @ w.T)`` against ``target``; with ``own``, each
    position's softmax leaves out its row's own classes other than its target; with
    ``smoothing`` = eps, against the label ``(1 - eps) onehot + eps / V`` (label smoothing:
    ``-log p(target) + eps * (target logit - mean logit)``).

    Parameters
    ----------
    h : (P, d) float tensor
        Hidden states of the positions.
    w : (V, d) float tensor
        Output embeddings of the V classes.
    target : (P,) long tensor
        Class index of each position, in ``0..V-1``.
    chunk : int
        Positions whose (chunk, V) logits are formed at once.
    own : (R, M) long tensor, optional
        Classes of each row (a user's items), -1 = none: left out of the softmax of that row's
        positions (never the position's target), as the paper's negatives are never one of the
        user's items.
    own_row : (P,) long tensor, optional (with ``own``)
        The row of ``own`` each position belongs to.
    smoothing : float in [0, 1)
        Label smoothing eps; not with ``own`` (a left-out class has no probability to share).

    Returns
    -------
    Scalar tensor; its gradients flow to ``h`` and ``w``.
    """
    if smoothing and own is not None:
        raise ValueError("label smoothing spreads over every class: not with left-out classes")
    if h.size(0) == 0:
        return (h.sum() + w.sum()) * 0.0  # no positions: zero loss, zero gradients
    return _ChunkedSoftmaxCE.apply(h.contiguous(), w, target, chunk, own, own_row,
                                   float(smoothing))
