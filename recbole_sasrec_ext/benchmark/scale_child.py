"""One measured pipeline of the scale benchmark, run alone in a fresh process by :mod:`.scale`.

``python -m recbole_sasrec_ext.benchmark.scale_child PIPELINE --data_path D --dataset N [...]``
prints one JSON line per finished stage (``{"stage", "seconds", "rss_mb", "hwm_mb", ...}``;
``hwm_mb`` is the process's peak resident memory so far, ``VmHWM`` of ``/proc/self/status``).

Pipelines (:data:`PIPELINES`):

``plugin``
    the plugin's SASRec: ``prepare`` (``create_dataset`` + ``data_preparation``: atomic-file check,
    RecBole's loading, full-sequence rows, split, loaders), ``model`` (model and trainer),
    ``train`` (one epoch, or its first ``max_steps`` batches: then the epoch time is extrapolated
    from the mean step time) and ``evaluate`` (full ranking of every user's test row, batched).
``recbole``
    RecBole 1.2.1's own ``SequentialDataset`` (prefix samples) and its split (``build``): the data
    preparation of RecBole's sequential models.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence

#: The pipelines this module runs.
PIPELINES = ("plugin", "recbole")


def proc_status_mb(field: str, pid: int | str = "self") -> float | None:
    """``VmRSS`` / ``VmHWM`` (``field``) of a process from ``/proc/<pid>/status``, in MiB."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


_cpu_mark = [time.process_time()]


def clock() -> float:
    """Start a stage: its wall clock (returned) and its CPU clock (the next :func:`emit`'s)."""
    _cpu_mark[0] = time.process_time()
    return time.perf_counter()


def emit(stage: str, seconds: float, **extra) -> None:
    """One JSON line for a finished stage (flushed: the parent reads it even if it kills us):
    wall and CPU seconds of the stage (CPU time is what contention on a shared machine does not
    inflate), resident memory now and at its peak so far, the 1-minute load average."""
    cpu = time.process_time()
    record = {"stage": stage, "seconds": round(seconds, 3),
              "cpu_seconds": round(cpu - _cpu_mark[0], 3),
              "rss_mb": proc_status_mb("VmRSS"), "hwm_mb": proc_status_mb("VmHWM"),
              "load": round(os.getloadavg()[0], 2), **extra}
    _cpu_mark[0] = cpu
    print(json.dumps(record), flush=True)


class FirstBatches:
    """The first ``n`` batches of a training loader
    (RecBole's trainer reads ``len`` and iterates)."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, min(n, len(loader))

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)


def config_dict(args: argparse.Namespace, workdir: str) -> dict:
    """The settings of both pipelines (SASRec paper's model size, full ranking, no log noise)."""
    return {
        "data_path": args.data_path,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "eval_args": {
            "split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"
        },
        "loss_type": args.loss_type,
        "n_negatives": args.negatives,
        "train_neg_sample_args": None,
        "train_stride": 0,
        "hidden_size": args.hidden_size,
        "inner_size": args.hidden_size,
        "train_batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "epochs": 1,
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": os.path.join(workdir, "saved"),
        "seed": args.seed,
        "reproducibility": True,
    }


def run_plugin(args: argparse.Namespace, workdir: str) -> None:
    from recbole.utils import init_seed

    from recbole_sasrec_ext import Config, create_dataset, data_preparation, get_model, get_trainer
    from recbole_sasrec_ext.apps.quick_start import start_logging

    config = Config("SASRec", args.dataset, config_dict=config_dict(args, workdir))
    start = clock()
    init_seed(config["seed"], config["reproducibility"])  # seeded as quick_start.build
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    emit("prepare", time.perf_counter() - start, users=int(dataset.user_num) - 1,
         items=int(dataset.item_num) - 1, interactions=len(dataset.user_item_pairs[0]),
         train_rows=len(train._dataset), test_rows=len(test._dataset))

    start = clock()
    start_logging(config)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model("SASRec")(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, model)
    emit("model", time.perf_counter() - start,
         parameters=sum(p.numel() for p in model.parameters()))

    batches = len(train)
    steps = batches if args.max_steps <= 0 else min(args.max_steps, batches)
    start = clock()
    cpu = time.process_time()
    loss = trainer._train_epoch(FirstBatches(train, steps), 0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    emit("train", seconds, batches=batches, steps=steps, mean_loss=round(float(loss) / steps, 4),
         epoch_seconds=round(seconds * batches / steps, 1),
         epoch_cpu_seconds=round(cpu * batches / steps, 1), extrapolated=steps < batches)

    start = clock()
    result = trainer.evaluate(test, load_best_model=False)
    emit("evaluate", time.perf_counter() - start, users=len(test._dataset),
         result={k: round(float(v), 4) for k, v in result.items()})


def run_recbole(args: argparse.Namespace, workdir: str) -> None:
    from recbole.data.dataset import SequentialDataset

    from recbole_sasrec_ext import Config

    config = Config("RecBole.SASRec", args.dataset, config_dict=config_dict(args, workdir))
    start = clock()
    dataset = SequentialDataset(config)
    built = dataset.build()
    emit("prepare", time.perf_counter() - start, users=int(dataset.user_num) - 1,
         items=int(dataset.item_num) - 1, rows=len(dataset.inter_feat),
         train_rows=len(built[0].inter_feat))


#: The measured settings (option name, type, default) the benchmark passes on to each child.
SETTINGS = (
    ("max_len", int, 200), ("hidden_size", int, 50), ("batch_size", int, 128),
    ("eval_batch_size", int, 512), ("loss_type", str, "SAMPLED_SOFTMAX"), ("negatives", int, 256),
    ("max_steps", int, 0),  # train only this many batches, extrapolate the epoch time (0: all)
)


def add_settings(parser: argparse.ArgumentParser) -> None:
    """The :data:`SETTINGS` options (``--max_len`` ...)."""
    for name, kind, default in SETTINGS:
        parser.add_argument(f"--{name}", type=kind, default=default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recbole_sasrec_ext.benchmark.scale_child")
    p.add_argument("pipeline", choices=PIPELINES)
    p.add_argument("--data_path", required=True)
    p.add_argument("--dataset", required=True)
    add_settings(p)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--threads", type=int, default=1)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    emit("start", 0.0)
    with tempfile.TemporaryDirectory(prefix="scale-") as workdir:
        os.chdir(workdir)  # logs and checkpoints of the run stay out of the caller's folder
        (run_plugin if args.pipeline == "plugin" else run_recbole)(args, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
