"""Scale benchmark: peak memory and stage times of the plugin's SASRec pipeline and of RecBole's
``SequentialDataset`` on synthetic ML-20M-like data of growing size.

``python -m recbole_sasrec_ext.benchmark.scale --sizes 1M,5M,20M --data /work/scale-data
--out results/scale``

For every size the data set ``syn-<size>`` (``users = interactions / 144.4``, as ML-20M; 27,000
items; :mod:`recbole_sasrec_ext.convert.synthetic`, seed 0) is generated under ``--data`` when
missing. Each pipeline (:mod:`.scale_child`) then runs alone in a fresh child process while this
process samples the child's resident memory every ``POLL_SECONDS``; a child above ``--cap_gb``
is killed and recorded as such (``killed: true``, the last stage it finished). The child reports
its own peak (``VmHWM``) after each stage, which is the number reported for finished runs.

Writes (atomically) ``scale.jsonl`` (one record per size and pipeline, the newest run of each kept),
``scale.md`` (the table) and ``memory.png`` (peak memory against interactions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from recbole_sasrec_ext.benchmark.scale_child import (
    PIPELINES,
    SETTINGS,
    add_settings,
    proc_status_mb,
)
from recbole_sasrec_ext.common.atomic_write import atomic_path, atomic_write_text
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from recbole_sasrec_ext.convert.synthetic import SyntheticSpec, parse_size, write_synthetic

#: ML-20M: 20,000,263 ratings of 138,493 users on 26,744 movies.
INTERACTIONS_PER_USER = 20_000_263 / 138_493
ITEMS = 27_000
POLL_SECONDS = 0.2
TARGET_GB = 4.0  # issue 12: the plugin's peak at 20M interactions, L=200
RESULTS_JSONL, TABLE_MD, PLOT_PNG = "scale.jsonl", "scale.md", "memory.png"
#: The stages each pipeline reports, in order (:mod:`.scale_child`).
PIPELINE_STAGES = {"plugin": ("prepare", "model", "train", "evaluate"), "recbole": ("prepare",)}


@dataclass
class Measurement:
    """One pipeline at one size: stages as the child reported them, peak memory, outcome."""

    size: int
    pipeline: str
    dataset: str
    users: int
    items: int
    max_len: int
    peak_rss_mb: float | None  # the child's VmHWM at its last report (None: killed before one)
    sampled_peak_mb: float  # the highest VmRSS this process saw
    killed: bool  # above the cap, or (``timed_out``) past the timeout
    cap_mb: float
    exit_code: int | None
    wall_seconds: float | None = None  # the child's whole run
    timed_out: bool = False  # killed by ``--timeout``, not by the memory cap
    error: str | None = None  # the last stderr line of a child that failed (exit code not 0)
    stages: dict = field(default_factory=dict)
    date: str = ""
    machine: str = ""
    command: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, str]:
        return self.size, self.pipeline


def machine() -> str:
    """CPU model, cores and memory of this machine, in words."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                      if x.startswith("MemTotal"))
        memory = f"{mem_kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        memory = "unknown memory"
    return f"{model}, {os.cpu_count()} cores, {memory}, {platform.system()}"


def size_name(size: int) -> str:
    return (f"{size // 1_000_000}M" if size % 1_000_000 == 0
            else f"{size // 1_000}k" if size % 1_000 == 0 else str(size))


def ensure_dataset(data: Path, size: int, seed: int = 0) -> tuple[str, int]:
    """The synthetic data set of ``size`` interactions under ``data`` (generated when missing)."""
    name = f"syn-{size_name(size)}"
    users = max(1, round(size / INTERACTIONS_PER_USER))
    if not (data / name / f"{name}.inter").is_file():
        spec = SyntheticSpec(users=users, items=ITEMS, interactions=size, seed=seed)
        print(write_synthetic(spec, data, name), flush=True)
    return name, users


@dataclass
class ChildRun:
    """What :func:`run_child` saw of one child process."""

    records: list[dict]  # the JSON lines it printed
    sampled_peak_mb: float  # the highest resident memory sampled
    killed: bool  # above the cap or past the timeout
    exit_code: int | None  # None when killed
    wall_seconds: float
    error: str | None  # the last line of its stderr when it failed
    timed_out: bool = False  # killed past the timeout (the memory was below the cap)


def run_child(cmd: list[str], cap_mb: float, timeout: float) -> ChildRun:
    """Run ``cmd``, sampling its resident memory; kill it above ``cap_mb`` or after ``timeout``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    records: list[dict] = []
    last_error: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                records.append(json.loads(line))
                print("   ", line, flush=True)

    def read_errors() -> None:
        for line in proc.stderr:
            if line.strip():
                last_error[:] = [line.strip()]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    errors = threading.Thread(target=read_errors, daemon=True)
    errors.start()
    peak, killed, timed_out, start = 0.0, False, False, time.monotonic()
    while proc.poll() is None:
        rss = proc_status_mb("VmRSS", proc.pid) or 0.0
        peak = max(peak, rss)
        timed_out = rss <= cap_mb and time.monotonic() - start > timeout
        if rss > cap_mb or timed_out:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            proc.wait()
            break
        time.sleep(POLL_SECONDS)
    reader.join(timeout=10)
    errors.join(timeout=10)
    code = None if killed else proc.returncode
    return ChildRun(records, peak, killed, code, time.monotonic() - start,
                    last_error[0][:300] if code and last_error else None, timed_out)


def measure(size: int, pipeline: str, args: argparse.Namespace) -> Measurement:
    name, users = ensure_dataset(Path(args.data), size)
    settings = {name: getattr(args, name) for name, _, _ in SETTINGS}
    child = [sys.executable, "-m", "recbole_sasrec_ext.benchmark.scale_child", pipeline,
             "--data_path", str(args.data), "--dataset", name,
             *(part for key, value in settings.items() for part in (f"--{key}", str(value)))]
    print(f"{name} {pipeline}: {' '.join(child[1:])}", flush=True)
    cap_mb = args.cap_gb * 1024
    run = run_child(child, cap_mb, args.timeout)
    stages = {r["stage"]: {k: v for k, v in r.items() if k != "stage"}
              for r in run.records if r["stage"] != "start"}
    hwm = max((r["hwm_mb"] for r in run.records if r.get("hwm_mb")), default=None)
    finished = not run.killed and run.exit_code == 0
    data = stages.get("prepare", {})  # the data set as loaded (items never drawn are absent)
    return Measurement(size=size, pipeline=pipeline, dataset=name, users=data.get("users", users),
                       items=data.get("items", ITEMS),
                       max_len=args.max_len, peak_rss_mb=hwm if finished else None,
                       sampled_peak_mb=round(run.sampled_peak_mb, 1), killed=run.killed,
                       cap_mb=cap_mb,
                       exit_code=run.exit_code, wall_seconds=round(run.wall_seconds, 1),
                       error=run.error,
                       timed_out=run.timed_out,
                       stages=stages,
                       date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       machine=machine(), command=" ".join(["python", *sys.argv]),
                       settings=settings)


def load(path: Path) -> list[Measurement]:
    if not path.is_file():
        return []
    return [Measurement(**json.loads(line))
            for line in path.read_text().splitlines() if line.strip()]


def merge(old: Sequence[Measurement], new: Sequence[Measurement]) -> list[Measurement]:
    """The newest measurement of every (size, pipeline), sorted."""
    latest = {m.key: m for m in [*old, *new]}
    return [latest[k] for k in sorted(latest)]


def _gb(mb: float | None) -> str:
    return "–" if mb is None else f"{mb / 1024:.2f} GB"


def _seconds(m: Measurement, stage: str, key: str = "seconds", cpu_key: str = "cpu_seconds") -> str:
    """``wall (CPU)`` seconds of a stage; ``–`` when it did not finish."""
    record = m.stages.get(stage, {})
    if record.get(key) is None:
        return "–"
    cpu = record.get(cpu_key)
    return f"{record[key]:,.1f}" + ("" if cpu is None else f" ({cpu:,.1f})")


_ALLOCATION = re.compile(r"allocate (\d+) bytes")


def _outcome(m: Measurement) -> str:
    """Peak memory of a finished run, or how it ended: killed at the cap, or failed (with the
    size of a failed allocation, when that is the error)."""
    if m.timed_out:
        return f"timed out at {_gb(m.sampled_peak_mb)} resident"
    if m.killed:
        return f"killed above {_gb(m.cap_mb)}"
    if m.exit_code != 0:
        found = _ALLOCATION.search(m.error or "")
        why = f": could not allocate {int(found.group(1)) / 2**30:.1f} GB" if found else ""
        return f"failed at {_gb(m.sampled_peak_mb)} resident{why}"
    return _gb(m.peak_rss_mb)


def _ended(m: Measurement) -> str:
    """``killed after 61 s, during prepare``: how and when a run that did not finish ended."""
    stage = next((s for s in PIPELINE_STAGES[m.pipeline] if s not in m.stages), "?")
    after = "" if m.wall_seconds is None else f" after {m.wall_seconds:,.0f} s"
    how = "timed out" if m.timed_out else "killed" if m.killed else "failed"
    return f"{how}{after}, during {stage}"


def table(rows: Sequence[Measurement]) -> str:
    """Markdown table: one line per size, both pipelines side by side; seconds as wall (CPU)."""
    by_size: dict[int, dict[str, Measurement]] = {}
    for m in rows:
        by_size.setdefault(m.size, {})[m.pipeline] = m
    lines = ["| interactions | users | items | L | plugin peak RSS | plugin prepare s "
             "| plugin one epoch s "
             "| plugin full-ranking eval s | RecBole SequentialDataset peak RSS "
             "| RecBole prepare s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for size, runs in sorted(by_size.items()):
        p, r = runs.get("plugin"), runs.get("recbole")
        any_run = p or r
        if p is not None and p.exit_code != 0:
            plugin = [_outcome(p), _ended(p), "–", "–"]
        elif p is not None:
            train = p.stages.get("train", {})
            epoch = _seconds(p, "train", "epoch_seconds", "epoch_cpu_seconds")
            if train.get("extrapolated"):
                epoch += f", extrapolated from {train['steps']} of {train['batches']} batches"
            users = p.stages.get("evaluate", {}).get("users")
            evaluation = _seconds(p, "evaluate") + (f", {users:,} users" if users else "")
            plugin = [_gb(p.peak_rss_mb), _seconds(p, "prepare"), epoch, evaluation]
        else:
            plugin = ["–"] * 4
        if r is not None:
            recbole = [_outcome(r), _seconds(r, "prepare") if r.exit_code == 0 else _ended(r)]
        else:
            recbole = ["not run", "–"]
        lines.append(f"| {size:,} | {any_run.users:,} | {any_run.items:,} | {any_run.max_len} | "
                     + " | ".join(plugin + recbole) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Measurement], path: Path, target_gb: float | None = None) -> Path:
    """Peak RSS (GB) against interactions. Killed runs are drawn at the cap (x), failed runs at
    the highest memory sampled before they failed (triangle, with the allocation that failed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    for pipeline, label, color in (
            ("plugin", "plugin SASRec: prepare + epoch + full-ranking eval", "tab:blue"),
            ("recbole", "RecBole SequentialDataset (prepare only)", "tab:red")):
        mine = [m for m in rows if m.pipeline == pipeline]
        done = [m for m in mine if m.exit_code == 0 and m.peak_rss_mb]
        killed = [m for m in mine if m.killed and not m.timed_out]
        failed = [m for m in mine if not m.killed and m.exit_code != 0]
        if done:
            ax.plot([m.size / 1e6 for m in done], [m.peak_rss_mb / 1024 for m in done], "o-",
                    color=color, label=label)
        if killed:
            ax.plot([m.size / 1e6 for m in killed], [m.cap_mb / 1024 for m in killed], "x",
                    color=color, markersize=10, mew=2, label=f"{pipeline}: killed at the cap")
        for m in failed:
            ax.plot([m.size / 1e6], [m.sampled_peak_mb / 1024], "v", color=color, markersize=9,
                    label=f"{pipeline}: failed")
            ax.annotate(_outcome(m).split(": ", 1)[-1], (m.size / 1e6, m.sampled_peak_mb / 1024),
                        textcoords="offset points", xytext=(-10, -16), ha="right", fontsize=7,
                        color=color)
    if rows:
        ax.axhline(rows[0].cap_mb / 1024, color="grey", ls=":", lw=1)
        ax.set_title(f"synthetic ML-20M-like data, L={rows[0].max_len}; dotted: the cap",
                     fontsize=10)
    if target_gb:
        ax.axhline(target_gb, color="tab:green", ls="--", lw=1, label=f"target {target_gb:g} GB")
    ax.set_xlabel("interactions (millions)")
    ax.set_ylabel("peak resident memory (GB)")
    ax.set_ylim(0, (rows[0].cap_mb / 1024 if rows else 8) * 1.2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recbole_sasrec_ext.benchmark.scale",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1M,5M,20M", help="interactions per data set, e.g. 1M,5M,20M")
    p.add_argument("--pipelines", default=",".join(PIPELINES), help="plugin,recbole")
    p.add_argument("--data", required=True,
                   help="folder of the generated data sets (not the repository)")
    p.add_argument("--out", default="results/scale")
    p.add_argument("--cap_gb", type=float, default=8.0,
                   help="kill a child above this resident memory")
    p.add_argument("--timeout", type=float, default=3 * 3600,
                   help="kill a child after these seconds")
    add_settings(p)  # --max_len, --max_steps (train that many batches, extrapolate), ...
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    except argparse.ArgumentTypeError as exc:
        print(f"error: --sizes: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    pipelines = [p for p in args.pipelines.split(",") if p]
    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown:
        print(f"error: --pipelines: unknown {', '.join(unknown)} "
              f"(expected {', '.join(PIPELINES)})", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_JSONL
    rows = load(path)
    for size in sizes:
        for pipeline in pipelines:
            rows = merge(rows, [measure(size, pipeline, args)])
            atomic_write_text(path, "".join(json.dumps(asdict(m)) + "\n" for m in rows))
            atomic_write_text(out / TABLE_MD, table(rows))
            plot(rows, out / PLOT_PNG, TARGET_GB)
    print(table(rows))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
