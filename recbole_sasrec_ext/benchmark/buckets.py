"""Epoch time and validation of a model under batching settings (``length_buckets``,
``length_split``), side by side.

``python -m recbole_sasrec_ext.benchmark.buckets --models GRU4Rec,RecBole.SASRec --dataset
beauty-s3rec --epochs 5 --settings plain length_split=True length_buckets=32 --out results/buckets``

For each model the runs alternate (the settings in the order given; ``plain`` = RecBole's random
batches, the reference of the ratio column), each in its own process with one thread
(``OMP_NUM_THREADS=1``), the same seed and the protocol of the ``beauty`` suite (leave-one-out,
full ranking, seen items removed), so background load affects both alike. Every run trains
``--epochs`` epochs with validation after each (early stopping off) and reports each epoch's
training seconds and validation NDCG@10. Writes ``buckets.jsonl`` (one line per run) and
``buckets.md`` (the table) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from recbole_sasrec_ext.benchmark.batch_settings import PLAIN, setting_args
from recbole_sasrec_ext.benchmark.runner import cpu_description, now_iso
from recbole_sasrec_ext.common.paths import PACKAGE_PARENT

#: The ``beauty`` suite's protocol.
PROTOCOL = (
    "--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'TO', 'mode': 'full'}",
    "--filter_seen=True", "--metrics=['Hit', 'NDCG']", "--topk=[10]",
    "--valid_metric=NDCG@10", "--eval_batch_size=4096", "--show_progress=False",
)


def run_epochs(model: str, dataset: str, data_path: str, epochs: int, setting: str, seed: int,
               extra: list[str]) -> dict:
    """One run in a child process; its summary's per-epoch training seconds and validation."""
    command = [sys.executable, "-m", "recbole_sasrec_ext", "--model", model, "--dataset", dataset,
               f"--data_path={data_path}", f"--epochs={epochs}", f"--stopping_step={epochs + 1}",
               f"--seed={seed}", "--train_neg_sample_args=None", *setting_args(setting),
               "--checkpoint_dir=saved-buckets", *PROTOCOL, *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(PACKAGE_PARENT))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{model} {setting}: exit {done.returncode}: "
                           f"{done.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    history = summary["valid_history"]
    seconds = [b["train_seconds"] - a["train_seconds"] for a, b in zip([{"train_seconds": 0.0},
                                                                        *history], history)]
    return {"model": model, "dataset": dataset, "setting": setting, "seed": seed,
            "epoch_seconds": [round(s, 2) for s in seconds],
            "valid_ndcg10": [round(h["valid_score"], 4) for h in history]}


def table(rows: list[dict]) -> str:
    lines = ["| model | setting | median epoch (s) | ratio | validation NDCG@10 by epoch |",
             "|---|---|---|---|---|"]
    base = {r["model"]: statistics.median(r["epoch_seconds"]) for r in rows
            if r["setting"] == PLAIN}
    for r in rows:
        median = statistics.median(r["epoch_seconds"])
        ratio = f"{median / base[r['model']]:.2f}x" if r["model"] in base else ""
        curve = " / ".join(f"{v:.4f}" for v in r["valid_ndcg10"])
        lines.append(f"| {r['model']} | {r['setting']} | {median:.1f} | {ratio} | {curve} |")
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
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=Path("results/buckets"))
    args, extra = parser.parse_known_args(argv)
    for setting in args.settings:
        try:
            setting_args(setting)
        except ValueError as exc:
            parser.error(str(exc))  # one line, exit 2, before any run
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in args.models.split(","):
        for setting in args.settings:
            row = run_epochs(model, args.dataset, str(Path(args.data_path).resolve()),
                             args.epochs, setting, args.seed, extra)
            rows.append(row)
            print(json.dumps(row), flush=True)
            with (args.out / "buckets.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    command = " ".join(["python -m recbole_sasrec_ext.benchmark.buckets", *(argv or sys.argv[1:])])
    header = (f"Measured {now_iso()} on {cpu_description()}, one thread per run, runs one after "
              f"the other; `{command}`")
    (args.out / "buckets.md").write_text(f"{header}\n\n{table(rows)}\n", encoding="utf-8")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
