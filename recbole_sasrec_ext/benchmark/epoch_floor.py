"""The plugin's CE training epoch beside a bare PyTorch loop's, side by side in one run.

``python -m recbole_sasrec_ext.benchmark.epoch_floor --floor ../shared/tools/sasrec_floor.py
--dataset beauty-s3rec --data_path datasets``

The bare loop (``sasrec_floor.py``, kept outside the project) trains SASRec (d=50, 2 blocks, 1
head, pre-LN, dropout 0.2) with full-softmax CE on each user's last window, the whole (B, L) batch
through the blocks. The plugin trains the same model on the same windows (``train_stride`` 0,
``layer_norm: pre``, ``init: xavier``) through its own pipeline; its batching settings
(``--settings``: ``plain``, ``length_split=True``, ``length_buckets=32``) and trimming decide how
much padding it computes. The runs alternate (floor, plugin, floor, ...), each in its own process
with one thread, so background load affects both alike; each reports the median epoch after its
first. One JSON line per run, then the ratio plugin / floor. The floor's input is
written from the data set's atomic file (``user item`` lines, ids 1..n in file order).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recbole_sasrec_ext.benchmark.batch_settings import PLAIN, setting_keys

#: The model of the bare loop, as plugin config keys (sasrec_floor.py's SASRec and Block).
FLOOR_MODEL = {
    "loss_type": "CE", "hidden_size": 50, "inner_size": 50, "n_layers": 2, "n_heads": 1,
    "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "layer_norm": "pre", "init": "xavier",
    "position_order": "from_end", "adam_betas": [0.9, 0.98], "train_stride": 0,
    "train_batch_size": 128, "learning_rate": 0.001,
    "label_smoothing": 0.0,  # the loop's plain CE (the full-ranking recipe would add 0.3)
}


def write_floor_input(inter: Path, out: Path) -> int:
    """``user item`` lines (ids 1..n by first appearance, each user's rows in time order) from an
    atomic ``.inter`` file with user, item and timestamp columns; returns the number of lines."""
    header, *lines = inter.read_text(encoding="utf-8").splitlines()
    names = [c.split(":")[0] for c in header.split("\t")]
    u, i, t = names.index("user_id"), names.index("item_id"), names.index("timestamp")
    rows = [line.split("\t") for line in lines if line]
    rows.sort(key=lambda r: (r[u], float(r[t])))
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    with open(out, "w", encoding="utf-8") as f:
        for r in rows:
            user = users.setdefault(r[u], len(users) + 1)
            item = items.setdefault(r[i], len(items) + 1)
            f.write(f"{user} {item}\n")
    return len(rows)


def plugin_epochs(dataset: str, data_path: str, epochs: int, setting: str, max_len: int) -> dict:
    """Train the floor's model with the plugin's pipeline for ``epochs`` epochs (no evaluation);
    the seconds of each epoch."""
    import torch

    from recbole_sasrec_ext import Config, create_dataset, data_preparation, get_model
    from recbole_sasrec_ext.training.trainer import PluginTrainer

    settings = dict(FLOOR_MODEL, data_path=data_path, MAX_ITEM_LIST_LENGTH=max_len,
                    **setting_keys(setting), show_progress=False, state="ERROR",
                    eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"})
    config = Config(model="SASRec", dataset=dataset, config_dict=settings)
    train, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("SASRec")(config, train._dataset)
    trainer = PluginTrainer(config, model)
    seconds = []
    for epoch in range(epochs):
        start = time.perf_counter()
        loss = trainer._train_epoch(train, epoch)
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "last_loss": loss / len(train), "threads": torch.get_num_threads()}


def floor_epochs(floor: Path, data: Path, epochs: int, max_len: int) -> dict:
    """Run the bare loop (CPU, CE, dropout 0.2, batch 128) for ``epochs`` epochs."""
    out = subprocess.run(
        [sys.executable, str(floor), str(data), str(epochs), "128", "0", str(max_len), "cpu",
         "0.2", "ce"], capture_output=True, text=True, check=True, env=_one_thread_env(),
    ).stdout.strip().splitlines()[-1]
    fields = dict(part.split("=", 1) for part in out.split())
    median, first = (float(fields[k].rstrip("s")) for k in ("median", "first"))
    return {"median": median, "first": first, "line": out}


def _one_thread_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _child(args) -> None:
    print(json.dumps(plugin_epochs(args.dataset, args.data_path, args.epochs, args.settings,
                                   args.max_len)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbole_sasrec_ext.benchmark.epoch_floor",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--floor", type=Path, required=True, help="path of sasrec_floor.py")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data_path", default="datasets")
    parser.add_argument("--max_len", type=int, default=50, help="MAX_ITEM_LIST_LENGTH (L)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (median after 1)")
    parser.add_argument("--rounds", type=int, default=2, help="floor/plugin alternations")
    parser.add_argument("--settings", nargs="+", default=["length_split=True", PLAIN],
                        help="batching settings of the plugin runs: plain or "
                             "key=value[+key=value], e.g. length_split=True length_buckets=32")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON lines here")
    args = parser.parse_args(argv)
    for setting in args.settings:
        try:
            setting_keys(setting)
        except ValueError as exc:
            parser.error(str(exc))  # one line, exit 2, before any run
    if args.child:
        args.settings = args.settings[0]
        _child(args)
        return 0
    inter = Path(args.data_path) / args.dataset / f"{args.dataset}.inter"
    if not args.floor.is_file() or not inter.is_file():
        missing = args.floor if not args.floor.is_file() else inter
        print(f"error: {missing}: no such file", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / f"{args.dataset}.txt"
        write_floor_input(inter, data)
        for round_ in range(args.rounds):
            floor = floor_epochs(args.floor, data, args.epochs, args.max_len)
            results.append({"run": "floor", "round": round_, "median_s": floor["median"],
                            "output": floor["line"]})
            _emit(results[-1], args.out)
            for setting in args.settings:
                cmd = [sys.executable, "-m", "recbole_sasrec_ext.benchmark.epoch_floor", "--child",
                       "--floor", str(args.floor), "--dataset", args.dataset, "--data_path",
                       args.data_path, "--max_len", str(args.max_len), "--epochs",
                       str(args.epochs), "--settings", setting]
                child = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True,
                                                  env=_one_thread_env()).stdout.splitlines()[-1])
                seconds = child["seconds"]
                results.append({"run": f"plugin {setting}", "round": round_,
                                "median_s": statistics.median(seconds[1:] or seconds),
                                "seconds": [round(s, 2) for s in seconds],
                                "mean_batch_loss": round(child["last_loss"], 4)})
                _emit(results[-1], args.out)
    floor_median = statistics.median(r["median_s"] for r in results if r["run"] == "floor")
    for run in sorted({r["run"] for r in results if r["run"] != "floor"}):
        median = statistics.median(r["median_s"] for r in results if r["run"] == run)
        _emit({"ratio": run + " / floor", "plugin_s": round(median, 2),
               "floor_s": round(floor_median, 2), "value": round(median / floor_median, 3)},
              args.out)
    return 0


def _emit(record: dict, out: Path | None) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        with open(out, "a", encoding="utf-8") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())
