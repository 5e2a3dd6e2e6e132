"""Cost of a training step per loss, side by side: ``python -m recbole_sasrec_ext.benchmark.loss_cost``.

Times forward + backward + Adam step of the plugin's SASRec stack (embedding, blocks, final norm,
loss at every position) on synthetic full-length batches of the size of an ML-1M epoch (6,040
users, 3,416 items, length 200, batch 128 = 48 batches), alternating the losses step by step so
that background load affects each the same. Prints one JSON line per loss and the ratios to CE;
``--label-smoothing eps`` adds CE with that label smoothing (the full-ranking recipe's 0.3).
The loss cost does not depend on which items are in the batch, so synthetic ids suffice.
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from recbole_sasrec_ext.layers.attention import CausalSelfAttention
from recbole_sasrec_ext.layers.block import TransformerBlock
from recbole_sasrec_ext.layers.embedding import SequenceEmbedding
from recbole_sasrec_ext.layers.losses import LossType, next_item_loss


class _Stack(nn.Module):
    def __init__(self, n_items: int, max_len: int, d: int, n_layers: int, layer_norm: str):
        super().__init__()
        self.embedding = SequenceEmbedding(n_items, max_len, d, 0.1, True)
        self.blocks = nn.ModuleList(
            TransformerBlock(CausalSelfAttention(d, 1, 0.1), d, d, 0.1, "relu", layer_norm, 1e-8)
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d, eps=1e-8)

    def forward(self, seq: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        x, _ = self.embedding(seq, length)  # (B, L, d)
        for block in self.blocks:
            x, _ = block(x)  # (B, L, d)
        return self.norm(x)  # (B, L, d)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3416)
    parser.add_argument("--users", type=int, default=6040)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--negatives", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=10,
                        help="timed steps per loss (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--layer-norm", default="sasrec")
    parser.add_argument("--label-smoothing", type=float, default=0.0,
                        help="also time CE with this label smoothing (0: not timed)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: expected an int >= 1")
    if not 0.0 <= args.label_smoothing < 1.0:
        parser.error(f"--label-smoothing {args.label_smoothing}: expected a float in [0, 1)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # (name, loss, label smoothing): each variant trains its own copy of the stack
    variants = [("CE", LossType.CE, 0.0), ("SAMPLED_SOFTMAX", LossType.SAMPLED_SOFTMAX, 0.0)]
    if args.label_smoothing:
        variants.append((f"CE+label_smoothing={args.label_smoothing}", LossType.CE,
                         args.label_smoothing))
    models = {
        name: _Stack(args.items + 1, args.max_len, args.hidden, 2, args.layer_norm)
        for name, _, _ in variants
    }
    optims = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in models.items()}
    seq = torch.randint(1, args.items + 1, (args.batch, args.max_len))  # (B, L) full windows
    target = torch.randint(1, args.items + 1, (args.batch, args.max_len))  # (B, L)
    length = torch.full((args.batch,), args.max_len)
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for step in range(args.steps + 1):
        for name, loss_type, smoothing in variants:
            model, opt = models[name], optims[name]
            start = time.perf_counter()
            opt.zero_grad()
            h = model(seq, length)  # (B, L, d)
            loss = next_item_loss(loss_type, h.flatten(0, 1), target.flatten(),
                                  model.embedding.item.weight, args.negatives, 0.75, smoothing)
            loss.backward()
            opt.step()
            if step:
                times[name].append(time.perf_counter() - start)
    batches = -(-args.users // args.batch)
    ce = statistics.median(times["CE"])
    for name, loss_type, _ in variants:
        med = statistics.median(times[name])
        print(json.dumps({
            "loss_type": name,
            "n_negatives": args.negatives if loss_type is LossType.SAMPLED_SOFTMAX else None,
            "median_s_per_batch": round(med, 4), "est_s_per_epoch": round(med * batches, 1),
            "ratio_to_ce": round(med / ce, 3), "steps": args.steps, "threads": args.threads,
            "shape": [args.batch, args.max_len, args.hidden, args.items],
        }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
