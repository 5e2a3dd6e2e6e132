"""Would bfloat16 make the CE epoch faster on this CPU? ``python -m recbole_sasrec_ext.benchmark.bf16_cost``.

Times, side by side in one process and alternating, (a) the plugin's float32 chunked softmax CE
(:func:`~recbole_sasrec_ext.layers.chunked_softmax.chunked_softmax_ce`, forward + backward) and the
same computation with its three matmuls in bfloat16 (logits, gradient of ``h``, gradient of ``W``;
softmax and sums in float32, the casts included), and (b) each of those matmuls alone in both
types, for one chunk. Shapes default to a Beauty batch of the full-ranking recipe (about 1,100
target positions, d = 64, 12,101 items, chunks of 128). Prints JSON lines. The bf16 variant lives
only here: the plugin's loss has no bf16 path (docs/results.md, "bf16 on the CPU").
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import time

import torch

from recbole_sasrec_ext.common.argv import positive
from recbole_sasrec_ext.layers.chunked_softmax import DEFAULT_CHUNK, chunked_softmax_ce


def bf16_ce(h: torch.Tensor, w: torch.Tensor, target: torch.Tensor, smoothing: float,
            chunk: int = DEFAULT_CHUNK) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Loss and gradients of ``chunked_softmax_ce`` (label smoothing's rank-one terms left out:
    they cost the same in both types) with bfloat16 matmuls."""
    n, v = h.size(0), w.size(0)
    hb, wb = h.bfloat16(), w.bfloat16()  # (P, d), (V, d)
    grad_h, grad_w = torch.empty_like(h), torch.zeros_like(w)  # (P, d), (V, d)
    low = torch.empty(chunk, v, dtype=torch.bfloat16)  # (c, V)
    high = torch.empty(chunk, v)  # (c, V)
    total = 0.0
    for start in range(0, n, chunk):
        hc, tc = hb[start:start + chunk], target[start:start + chunk]  # (c, d), (c,)
        c = hc.size(0)
        rows = torch.arange(c)  # (c,)
        probs = high[:c]
        probs.copy_(torch.mm(hc, wb.t(), out=low[:c]))  # (c, V) logits, to float32
        torch.ops.aten._softmax.out(probs, 1, False, out=probs)  # (c, V)
        total += float(-probs[rows, tc].double().log().sum())
        probs[rows, tc] -= 1.0 - smoothing
        pb = low[:c]
        pb.copy_(probs)  # (c, V) to bfloat16
        grad_h[start:start + c] = torch.mm(pb, wb)  # (c, d)
        grad_w += torch.mm(pb.t(), hc)  # (V, d)
    return total / n, grad_h / n, grad_w / n


def _ms(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=positive(int), default=1100)
    parser.add_argument("--d", type=positive(int), default=64)
    parser.add_argument("--items", type=positive(int), default=12101)
    parser.add_argument("--rounds", type=positive(int), default=3)
    parser.add_argument("--repeats", type=positive(int), default=5)
    parser.add_argument("--threads", type=positive(int), default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h = (torch.randn(args.positions, args.d) * 0.5).requires_grad_()  # (P, d)
    w = (torch.randn(args.items, args.d) * 0.1).requires_grad_()  # (V, d)
    target = torch.randint(0, args.items, (args.positions,))  # (P,)

    def float32_step():
        h.grad = w.grad = None
        chunked_softmax_ce(h, w, target, smoothing=0.3).backward()

    def bf16_step():
        bf16_ce(h.detach(), w.detach(), target, 0.3)

    times = {"float32": [], "bf16": []}
    for _ in range(args.rounds):  # alternating: background load hits both alike
        times["float32"].append(_ms(float32_step, args.repeats))
        times["bf16"].append(_ms(bf16_step, args.repeats))
    best = {k: min(v) for k, v in times.items()}
    print(json.dumps({"what": "CE forward+backward, ms per batch", **best,
                      "bf16/float32": round(best["bf16"] / best["float32"], 3)}))
    c = min(DEFAULT_CHUNK, args.positions)
    hc, wd, gc = h.detach()[:c], w.detach(), torch.rand(c, args.items)  # (c, d), (V, d), (c, V)
    for dtype in (torch.float32, torch.bfloat16):
        a, b, g = hc.to(dtype), wd.to(dtype), gc.to(dtype)
        parts = {"logits": _ms(lambda: torch.mm(a, b.t()), 20),  # noqa: B023
                 "grad_h": _ms(lambda: torch.mm(g, b), 20),  # noqa: B023
                 "grad_w": _ms(lambda: torch.mm(g.t(), a), 20)}  # noqa: B023
        print(json.dumps({"what": f"one chunk's matmuls, ms ({str(dtype)[6:]})",
                          **{k: round(v, 3) for k, v in parts.items()}}))
    softmax = _ms(lambda: torch.softmax(gc, 1), 20)
    cast = _ms(lambda: gc.bfloat16().float(), 20)
    print(json.dumps({"what": "one chunk's float32 softmax and a cast there and back, ms",
                      "softmax": round(softmax, 3), "cast_both_ways": round(cast, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
