"""Side-by-side training speed: the plugin, RecBole's SASRec and SASRec.pytorch in one run.

    python -m recbole_sasrec_ext.benchmark.device_speed --dataset ml-1m --data_path DIR \\
        --config_files "properties/dataset/ml-1m.yaml" --device cuda --epochs 60 \\
        --systems plugin,recbole --sasrec-pytorch PATH [--checkout main=/path/to/other/checkout]

Every system runs in its own child process, one after the other, on the same machine. Reported
per system: seconds per training epoch (mean and median over epochs; evaluation excluded), the
training seconds until the test ``--metric`` (default ``ndcg@10``) first reaches ``--target``
(default 0.58), the test metric at the end, and peak memory (CUDA: ``max_memory_allocated``; CPU:
the process's maximum resident set).

* ``plugin`` / ``recbole``: the plugin's SASRec / RecBole's ``RecBole.SASRec`` through the plugin's
  pipeline. After every epoch the test set is evaluated (not counted as training time) to find
  the time to target; with ``--stop-at-target`` the run stops there. Autograd anomaly detection
  is switched off after the model is built (importing RecBole's model package runs SINE's
  module-level ``set_detect_anomaly(True)``, which would slow RecBole's SASRec several-fold).
* ``--checkout NAME=PATH`` adds ``plugin@NAME``: the plugin's SASRec from another checkout of this
  project (e.g. ``main``), imported from ``PATH`` (``PYTHONPATH=PATH``), for before/after ratios.
* ``sasrec-pytorch``: ``main.py`` of a SASRec.pytorch checkout (fetched by the user into an ignored
  folder, e.g. ``.devdata/SASRec.pytorch``; never vendored), run in that folder with its paper
  settings; it reads ``data/<dataset>.txt`` there (the shared ``ml-1m.txt`` is byte-identical to
  its file) and evaluates every 20 epochs (its own sampled uni100 test: 100 random negatives,
  at most 10,000 users), so its time to target has a 20-epoch granularity.

On a shared CPU pass ``--threads 1``: with more runnable threads than cores, torch's OpenMP
threads spin against each other (measured here: ml-100k 30 s per epoch with 2 threads under a
load average of 30, 2.3 s with 1 thread).

One JSON object per system is appended to ``--out`` (JSON lines); a Markdown table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: Child process for ``plugin`` / ``recbole`` (only APIs that every checkout of the plugin has).
_PIPELINE_CHILD = r"""
import json, resource, sys, torch
from recbole.utils import init_seed
from recbole_sasrec_ext.config.plugin_config import Config
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.training.registry import get_trainer
spec = json.loads(sys.argv[1])
if spec["threads"]:
    torch.set_num_threads(spec["threads"])
config = Config(model=spec["model"], dataset=spec["dataset"], config_file_list=spec["config_files"],
                config_dict=spec["config_dict"])
init_seed(config["seed"], config["reproducibility"])
_, train, valid, test, model = build(config)
torch.autograd.set_detect_anomaly(False)  # importing RecBole's SINE switches it on process-wide
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
points, metric, target = [], spec["metric"], spec["target"]
class Reached(Exception):
    pass
def after_epoch(epoch, valid_score):
    result = trainer.evaluate(test, load_best_model=False)
    points.append({"epoch": epoch, "train_seconds": trainer.train_seconds, "test": float(result[metric])})
    if spec["stop_at_target"] and result[metric] >= target:
        raise Reached
try:
    trainer.fit(train, valid, saved=False, callback_fn=after_epoch)
except Reached:
    pass
device = config["device"]
if device.type == "cuda":
    peak = torch.cuda.max_memory_allocated(device) / 2**20
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("DEVICE_SPEED_RESULT " + json.dumps({"points": points, "peak_memory_mb": peak, "device": str(device)}))
"""  # noqa: E501

#: Child process for SASRec.pytorch: runs its ``main.py`` and reports peak memory.
_SASREC_PYTORCH_CHILD = r"""
import json, resource, runpy, sys, torch
out, sys.argv = sys.argv[1], ["main.py"] + sys.argv[2:]
try:
    runpy.run_path("main.py", run_name="__main__")
finally:
    cuda = torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(out, "w") as f:
        json.dump({"peak_memory_mb": peak}, f)
"""  # noqa: E501

#: SASRec.pytorch's evaluation line.
_SASREC_PYTORCH_LINE = re.compile(
    r"epoch:(\d+), time: ([0-9.]+)\(s\), valid \(NDCG@10: ([0-9.]+), HR@10: ([0-9.]+)\), "
    r"test \(NDCG@10: ([0-9.]+), HR@10: ([0-9.]+)\)"
)
_SASREC_PYTORCH_METRICS = {"ndcg@10": 4, "hit@10": 5}


def summarize(
    name: str, points: list[dict], peak: float, target: float, extra: dict | None = None
) -> dict:
    """Seconds per epoch, time to target and final metric from cumulative (epoch, seconds, test)
    points (``epoch`` 0-based, ``train_seconds`` cumulative at the end of that epoch)."""
    per_epoch, previous_epoch, previous_seconds = [], -1, 0.0
    for point in points:
        epochs = point["epoch"] - previous_epoch
        per_epoch += [(point["train_seconds"] - previous_seconds) / epochs] * epochs
        previous_epoch, previous_seconds = point["epoch"], point["train_seconds"]
    reached = next((p for p in points if p["test"] >= target), None)
    return {
        "system": name,
        "epochs": previous_epoch + 1,
        "seconds_per_epoch_mean": round(statistics.fmean(per_epoch), 4) if per_epoch else None,
        "seconds_per_epoch_median": round(statistics.median(per_epoch), 4) if per_epoch else None,
        "seconds_to_target": None if reached is None else round(reached["train_seconds"], 2),
        "epoch_at_target": None if reached is None else reached["epoch"] + 1,
        "final_test": points[-1]["test"] if points else None,
        "best_test": max((p["test"] for p in points), default=None),
        "peak_memory_mb": round(peak, 1),
        **(extra or {}),
    }


def run_pipeline(name: str, model: str, pythonpath: str, args: argparse.Namespace) -> dict:
    """``plugin``/``recbole``/``plugin@NAME`` in a child process."""
    config_dict = {
        "epochs": args.epochs, "eval_step": 1, "stopping_step": args.epochs + 1,
        "device": args.device,
        "use_gpu": args.device != "cpu", "data_path": args.data_path, "state": "WARNING",
        "show_progress": False, "seed": args.seed, **json.loads(args.config_dict),
    }
    spec = {
        "model": model, "dataset": args.dataset, "config_files": args.config_files.split() or None,
        "config_dict": config_dict, "metric": args.metric, "target": args.target,
        "stop_at_target": args.stop_at_target, "threads": args.threads,
    }
    env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.run(
        [sys.executable, "-c", _PIPELINE_CHILD, json.dumps(spec)],
        env=env, capture_output=True, text=True, check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DEVICE_SPEED_RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"system": name, "error": f"exit {proc.returncode}: {tail[0]}"}
    result = json.loads(lines[-1].split(" ", 1)[1])
    return summarize(name, result["points"], result["peak_memory_mb"], args.target,
                     {"pythonpath": pythonpath, "model": model, "device": result["device"]})


def run_sasrec_pytorch(path: Path, args: argparse.Namespace) -> dict:
    """SASRec.pytorch's ``main.py`` in ``path`` with the paper's ML-1M settings."""
    name = "sasrec-pytorch"
    if args.metric not in _SASREC_PYTORCH_METRICS:
        return {
            "system": name,
            "error": f"SASRec.pytorch reports only {', '.join(_SASREC_PYTORCH_METRICS)}",
        }
    if not (path / "main.py").is_file() or not (path / "data" / f"{args.dataset}.txt").is_file():
        return {"system": name, "error": f"need {path}/main.py and {path}/data/{args.dataset}.txt"}
    with tempfile.TemporaryDirectory() as tmp:
        memory_file, log_file = Path(tmp) / "memory.json", Path(tmp) / "stdout.txt"
        argv = [
            f"--dataset={args.dataset}", "--train_dir=device_speed", f"--device={args.device}",
            f"--num_epochs={args.epochs}", *args.sasrec_pytorch_args.split(),
        ]
        with open(log_file, "w") as log:
            proc = subprocess.run(
                [sys.executable, "-c", _SASREC_PYTORCH_CHILD, str(memory_file), *argv],
                cwd=path, stdout=log, stderr=subprocess.STDOUT, check=False,
            )
        text = log_file.read_text(errors="replace")
        peak = (
            json.loads(memory_file.read_text())["peak_memory_mb"]
            if memory_file.is_file() else float("nan")
        )
    column = _SASREC_PYTORCH_METRICS[args.metric]
    points = [
        {"epoch": int(m.group(1)) - 1, "train_seconds": float(m.group(2)),
         "test": float(m.group(column + 1))}
        for m in _SASREC_PYTORCH_LINE.finditer(text)
    ]
    if proc.returncode != 0 and not points:
        return {
            "system": name,
            "error": f"exit {proc.returncode}: {text.strip().splitlines()[-1:]}",
        }
    return summarize(name, points, peak, args.target, {"path": str(path), "argv": argv})


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    head = (
        f"| system | epochs | s/epoch mean | s/epoch median "
        f"| s to test {args.metric} ≥ {args.target} "
        f"| final test {args.metric} | peak MiB |\n|---|---|---|---|---|---|---|\n"
    )
    body = ""
    for r in rows:
        if "error" in r:
            body += f"| {r['system']} | error: {r['error']} ||||||\n"
            continue
        reached = (
            "not reached" if r["seconds_to_target"] is None
            else f"{r['seconds_to_target']} (epoch {r['epoch_at_target']})"
        )
        body += (
            f"| {r['system']} | {r['epochs']} | {r['seconds_per_epoch_mean']} "
            f"| {r['seconds_per_epoch_median']} "
            f"| {reached} | {r['final_test']} | {r['peak_memory_mb']} |\n"
        )
    return head + body


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m recbole_sasrec_ext.benchmark.device_speed",
                                description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-1m")
    p.add_argument("--data_path", default="datasets/")
    p.add_argument("--config_files", default="",
                   help='plugin/RecBole config files, space separated')
    p.add_argument("--config_dict", default="{}",
                   help="JSON of extra config keys for plugin/recbole")
    p.add_argument("--device", default="cuda")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--metric", default="ndcg@10")
    p.add_argument("--target", type=float, default=0.58)
    p.add_argument("--stop-at-target", action="store_true")
    p.add_argument("--systems", default="plugin,recbole", help="comma list of plugin, recbole")
    p.add_argument("--checkout", action="append", default=[], metavar="NAME=PATH",
                   help="also run the plugin's SASRec from another checkout")
    p.add_argument("--sasrec-pytorch", type=Path, default=None, metavar="PATH",
                   help="SASRec.pytorch folder")
    p.add_argument("--sasrec-pytorch-args", default="--maxlen=200 --dropout_rate=0.2",
                   help="extra arguments of SASRec.pytorch's main.py")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads of the plugin/recbole children (0 = torch's default)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the whole list this many times, interleaved")
    p.add_argument("--out", type=Path, default=None, help="append one JSON line per system here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    own = str(Path(__file__).resolve().parents[2])
    jobs = []
    for system in filter(None, args.systems.split(",")):
        if system not in ("plugin", "recbole"):
            print(f"error: --systems: unknown system {system!r} (plugin, recbole)", file=sys.stderr)
            return 2
        jobs.append((system, "SASRec" if system == "plugin" else "RecBole.SASRec", own))
    for item in args.checkout:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            print(f"error: --checkout {item!r}: expected NAME=FOLDER", file=sys.stderr)
            return 2
        jobs.append((f"plugin@{name}", "SASRec", str(Path(path).resolve())))
    rows = []
    for _ in range(args.repeat):
        for name, model, pythonpath in jobs:
            rows.append(run_pipeline(name, model, pythonpath, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if args.sasrec_pytorch is not None:
            rows.append(run_sasrec_pytorch(args.sasrec_pytorch.resolve(), args))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            f.writelines(
                json.dumps({**row, "dataset": args.dataset, "args": vars(args) | {
                    "out": str(args.out), "sasrec_pytorch": str(args.sasrec_pytorch)}}) + "\n"
                for row in rows
            )
    print(markdown(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
