"""Where a model's training time goes: ``python -m recbole_sasrec_ext.benchmark.profile_epoch``.

Builds a run exactly as ``run_recbole.py`` would (the plugin's ``Config``, data and trainer, the
``--key=value`` settings given), trains ``--warmup`` batches, then ``--batches`` batches under the
torch profiler through the trainer's own epoch, and prints the seconds per batch, the epoch it
implies, and the operators by self CPU time. For RecBole's baselines as for the plugin's models
(docs/results.md: RecBole's BERT4Rec on Beauty).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import torch
import yaml
from torch.profiler import ProfilerActivity, profile

from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.common.argv import parse_overrides, positive
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT
from recbole_sasrec_ext.config.plugin_config import Config
from recbole_sasrec_ext.training.registry import get_trainer


class _FirstBatches:
    """The first ``n`` batches of a training loader, otherwise the loader itself."""

    def __init__(self, loader, n: int) -> None:
        self._loader, self._n = loader, n

    def __iter__(self):
        return itertools.islice(iter(self._loader), self._n)

    def __len__(self) -> int:
        return self._n

    def __getattr__(self, name):
        return getattr(self._loader, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--batches", type=positive(int), default=30)
    parser.add_argument("--warmup", type=positive(int), default=3)
    parser.add_argument("--rows", type=positive(int), default=25, help="operators listed")
    args, rest = parser.parse_known_args(argv)
    overrides = {k: yaml.safe_load(v) for k, v in parse_overrides(parser, rest).items()}
    settings = {"show_progress": False, **overrides}
    try:  # a bad key, value or data set: one line, exit 2, before anything is trained
        config = Config(args.model, args.dataset, config_dict=settings)
        _, train, _, _, model = build(config)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer._train_epoch(_FirstBatches(train, args.warmup), 0)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer._train_epoch(_FirstBatches(train, args.batches), 1)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "model": args.model, "dataset": args.dataset, "threads": torch.get_num_threads(),
        "batches_per_epoch": len(train), "batch_size": config["train_batch_size"],
        "s_per_batch": round(seconds / args.batches, 4),
        "epoch_s_implied": round(seconds / args.batches * len(train), 1),
        "note": "profiler overhead included",
    }))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
