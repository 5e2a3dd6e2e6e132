"""Epoch time and validation of a model under batching settings (``length_buckets``,
``length_split``), allocators and process layouts, side by side.

``python -m recbole_sasrec_ext.benchmark.buckets --models GRU4Rec,RecBole.SASRec --dataset
beauty-s3rec --epochs 5 --settings plain length_split=True length_buckets=32 --out results/buckets``

``python -m recbole_sasrec_ext.benchmark.buckets --models RecBole.SASRec --dataset ml-100k
--data_path "" --epochs 2 --settings length_split=True --allocators system tuned --layouts 1x2 2x1
--out results/allocator``

For each model the runs alternate (every setting x allocator x layout, in the order given; the
first is the reference of the ratio column: ``plain`` = RecBole's random batches by default),
each in its own process, the same seed and the protocol of the ``beauty`` suite (leave-one-out,
full ranking, seen items removed), so background load affects all alike. ``--allocators``:
``tuned`` (what the command line does, common/allocator.py) or ``system`` (glibc's defaults);
``--layouts PxT``: P training processes (``--nproc=P``, docs/scaling.md) of T threads each
(default ``1x1``). Every run trains ``--epochs`` epochs with validation after each (early stopping
off) and reports each epoch's training seconds and validation NDCG@10. Writes ``buckets.jsonl``
(one line per run) and ``buckets.md`` (the table) into ``--out``. ``--data_path ""`` reads the
data set where RecBole finds it by itself (its bundled ml-100k).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from recbole_sasrec_ext.benchmark.batch_settings import PLAIN, setting_args
from recbole_sasrec_ext.benchmark.runner import cpu_description, now_iso
from recbole_sasrec_ext.common.allocator import CHOICES, OPT_OUT_VARIABLE
from recbole_sasrec_ext.common.paths import PACKAGE_PARENT

#: The ``beauty`` suite's protocol.
PROTOCOL = (
    "--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'TO', 'mode': 'full'}",
    "--filter_seen=True", "--metrics=['Hit', 'NDCG']", "--topk=[10]",
    "--valid_metric=NDCG@10", "--eval_batch_size=4096", "--show_progress=False",
)


#: The default ``--layouts``: one process, one thread.
ONE_THREAD = "1x1"


def parse_layout(text: str) -> tuple[int, int]:
    """``PxT`` as (processes, threads per process), both >= 1; ValueError (one line) otherwise."""
    match = re.fullmatch(r"([1-9][0-9]*)x([1-9][0-9]*)", text)
    if match is None:
        raise ValueError(f"--layouts: {text!r}: expected PxT (processes x threads), e.g. 1x2 2x1")
    return int(match.group(1)), int(match.group(2))


def run_epochs(model: str, dataset: str, data_path: str, epochs: int, setting: str, seed: int,
               extra: list[str], allocator: str = "tuned", layout: str = ONE_THREAD) -> dict:
    """One run in a child process; its summary's per-epoch training seconds and validation."""
    processes, threads = parse_layout(layout)
    command = [sys.executable, "-m", "recbole_sasrec_ext", "--model", model, "--dataset", dataset,
               *([f"--data_path={data_path}"] if data_path else []),
               f"--epochs={epochs}", f"--stopping_step={epochs + 1}",
               f"--seed={seed}", "--train_neg_sample_args=None", *setting_args(setting),
               *([f"--nproc={processes}"] if processes > 1 else []),
               "--checkpoint_dir=saved-buckets", *PROTOCOL, *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=str(PACKAGE_PARENT), **{OPT_OUT_VARIABLE: allocator})
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{model} {setting} {allocator} {layout}: exit {done.returncode}: "
                           f"{done.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    history = summary["valid_history"]
    seconds = [b["train_seconds"] - a["train_seconds"] for a, b in zip([{"train_seconds": 0.0},
                                                                        *history], history)]
    return {"model": model, "dataset": dataset, "setting": setting, "seed": seed,
            "allocator": allocator, "layout": layout,
            "epoch_seconds": [round(s, 2) for s in seconds],
            "valid_ndcg10": [round(h["valid_score"], 4) for h in history]}


def table(rows: list[dict]) -> str:
    """One line per run; the ratio is against the model's first run (the first combination)."""
    lines = ["| model | setting | allocator | processes x threads | median epoch (s) | ratio "
             "| validation NDCG@10 by epoch |", "|---|---|---|---|---|---|---|"]
    base: dict[str, float] = {}
    for r in rows:
        median = statistics.median(r["epoch_seconds"])
        base.setdefault(r["model"], median)
        curve = " / ".join(f"{v:.4f}" for v in r["valid_ndcg10"])
        lines.append(f"| {r['model']} | {r['setting']} | {r.get('allocator', 'tuned')} | "
                     f"{r.get('layout', ONE_THREAD)} | {median:.1f} | "
                     f"{median / base[r['model']]:.2f}x | {curve} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="GRU4Rec,RecBole.SASRec")
    parser.add_argument("--dataset", default="beauty-s3rec")
    parser.add_argument("--data_path", default="datasets")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--settings", nargs="+", default=[PLAIN, "length_split=True"],
                        help="batching settings to compare: plain (RecBole's batches) or "
                             "key=value[+key=value], e.g. plain length_split=True "
                             "length_buckets=32")
    parser.add_argument("--allocators", nargs="+", choices=CHOICES, default=["tuned"],
                        help="glibc allocator settings to compare (default tuned: the command "
                             "line's)")
    parser.add_argument("--layouts", nargs="+", default=[ONE_THREAD],
                        help="PxT: P training processes of T threads each (default 1x1)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=Path("results/buckets"))
    args, extra = parser.parse_known_args(argv)
    for setting in args.settings:
        try:
            setting_args(setting)
        except ValueError as exc:
            parser.error(str(exc))  # one line, exit 2, before any run
    for layout in args.layouts:
        try:
            parse_layout(layout)
        except ValueError as exc:
            parser.error(str(exc))
    data_path = str(Path(args.data_path).resolve()) if args.data_path else ""
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    combinations = list(itertools.product(args.settings, args.allocators, args.layouts))
    for model in args.models.split(","):
        for setting, allocator, layout in combinations:
            row = run_epochs(model, args.dataset, data_path, args.epochs, setting, args.seed,
                             extra, allocator, layout)
            rows.append(row)
            print(json.dumps(row), flush=True)
            with (args.out / "buckets.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    command = "python -m recbole_sasrec_ext.benchmark.buckets " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    header = (f"Measured {now_iso()} on {cpu_description()}, runs one after the other "
              f"(processes x threads as listed); `{command}`")
    (args.out / "buckets.md").write_text(f"{header}\n\n{table(rows)}\n", encoding="utf-8")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
