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


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean over positions of ``logsumexp(h W^T) - h·W[target]``; gradients made in forward."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, target: torch.Tensor, chunk: int):
        n, _ = h.shape  # (P, d)
        grad_h = torch.empty_like(h)  # (P, d)
        grad_w = torch.zeros_like(w)  # (V, d)
        needs_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total = h.new_zeros((), dtype=torch.float64)
        buffer = h.new_empty((min(chunk, n), w.size(0)))  # (c, V) reused by every chunk
        for start in range(0, n, chunk):
            hc, tc = h[start:start + chunk], target[start:start + chunk]  # (c, d), (c,)
            c = hc.size(0)
            logits = torch.mm(hc, w.t(), out=buffer[:c])  # (c, V)
            rows = torch.arange(c, device=h.device)  # (c,)
            target_logit = logits[rows, tc]  # (c,)
            top = logits.max(dim=1, keepdim=True).values  # (c, 1)
            logits.sub_(top).exp_()  # (c, V) exp(z - max)
            norm = logits.sum(dim=1, keepdim=True)  # (c, 1)
            lse = top.squeeze(1) + norm.squeeze(1).log()  # (c,)
            total += (lse - target_logit).sum(dtype=torch.float64)
            if needs_grad:
                probs = logits.div_(norm)  # (c, V) softmax, in place
                probs[rows, tc] -= 1.0  # (c, V) d loss_sum / d logits
                torch.mm(probs, w, out=grad_h[start:start + c])  # (c, d)
                grad_w.addmm_(probs.t(), hc)  # (V, d)
        ctx.save_for_backward(grad_h.div_(n), grad_w.div_(n))
        return (total / n).to(h.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_out, grad_w * grad_out, None, None


def chunked_softmax_ce(
    h: torch.Tensor, w: torch.Tensor, target: torch.Tensor, chunk: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """Mean cross-entropy of ``softmax(h @ w.T)`` against ``target``.

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

    Returns
    -------
    Scalar tensor; its gradients flow to ``h`` and ``w``.
    """
    if h.size(0) == 0:
        return (h.sum() + w.sum()) * 0.0  # no positions: zero loss, zero gradients
    return _ChunkedSoftmaxCE.apply(h.contiguous(), w, target, chunk)
