"""The ``speed`` command: a suite's ``candidate`` model against its ``reference``, side by side.

``run_speed`` runs the two models with the benchmark runner (resumable; ``results.csv`` and
``histories.jsonl`` exactly as ``run_suite`` writes them), then writes ``speed.md``: for every data
set and seed, seconds per training epoch, time to target, peak memory, epochs and test metrics of
both models, with the ratio candidate / reference.

Time to target: the target is the reference's best validation score (``best_valid_score``, i.e.
the suite's ``valid_metric``), or with ``target_metric`` the best value of that metric in the
reference's validation history. A model's time to target is its cumulative training seconds
(evaluation excluded) at its first validation scoring at least the target. Higher scores count as
better.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from recbole_sasrec_ext.benchmark import results
from recbole_sasrec_ext.benchmark.report import COST_FORMATS, METRIC_DIGITS
from recbole_sasrec_ext.benchmark.results import METRIC_PREFIX, Row, Status, metric_columns
from recbole_sasrec_ext.benchmark.runner import now_iso, run_suite
from recbole_sasrec_ext.benchmark.suite import RunSpec, Suite, SuiteError
from recbole_sasrec_ext.common.atomic_write import atomic_write_text
from recbole_sasrec_ext.contract.summary import ValidationRecord

SPEED_NAME = "speed.md"
_TARGET_METRIC_RE = re.compile(r"([a-z]+)@([0-9]+)")
# Below this ratio a ratio reads as "1/N" (N times less), e.g. 1/37.
_FRACTION_BELOW = 0.5
History = Sequence[ValidationRecord]


class SpeedError(SuiteError):
    """A suite or an option the ``speed`` command cannot use; the message names the key."""


@dataclass(frozen=True)
class TimeToTarget:
    """When a validation history first reached a target, and the best score it reached."""

    seconds: float | None  # cumulative training seconds at that validation; None: not reached
    epoch: int | None  # 0-based epoch of that validation
    best: float | None  # best score in the history; None: no validation

    @property
    def reached(self) -> bool:
        return self.seconds is not None


def history_score(entry: ValidationRecord, metric: str | None = None) -> float | None:
    """``valid_score`` of one validation, or ``valid_result[metric]`` when a metric is given
    (``None`` when that validation did not compute it)."""
    if metric is None:
        return entry.valid_score
    return entry.valid_result[metric] if metric in entry.valid_result else None


def time_to_target(
    history: History, target: float | None, metric: str | None = None
) -> TimeToTarget:
    """Training seconds at the first validation of ``history`` scoring ``>= target``.

    Parameters
    ----------
    history
        Validations in order, as in a run's ``valid_history``.
    target
        The score to reach; ``None`` (no target) is never reached.
    metric
        Read ``valid_result[metric]`` instead of ``valid_score``.
    """
    scores = [(entry, history_score(entry, metric)) for entry in history]
    scores = [(entry, score) for entry, score in scores if score is not None]
    best = max((score for _, score in scores), default=None)
    for entry, score in scores:
        if target is not None and score >= target:
            return TimeToTarget(entry.train_seconds, entry.epoch, best)
    return TimeToTarget(None, None, best)


def ratio(candidate: float | None, reference: float | None) -> float | None:
    """``candidate / reference``; ``None`` when either is missing or the reference is not > 0."""
    if candidate is None or reference is None or not reference > 0 or not math.isfinite(candidate):
        return None
    return candidate / reference


def format_ratio(value: float | None) -> str:
    """``1/37`` below 0.5, ``0.80×`` below 1, ``2.4×`` below 10, ``37×`` above; ``n/a`` if none."""
    if value is None or not math.isfinite(value) or value <= 0:
        return "n/a"
    if value < _FRACTION_BELOW:
        return f"1/{_short(1 / value)}"
    return f"{value:.2f}×" if value < 1 else f"{_short(value)}×"


def _short(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def time_phrase(value: float | None) -> str:
    """``1/37 of the time`` or ``2.4× the time`` for a ratio of times."""
    text = format_ratio(value)
    return f"{text} of the time" if text.startswith("1/") else f"{text} the time"


def comparison_models(suite: Suite) -> tuple[str, str]:
    """``(reference, candidate)`` of a suite; a ``SpeedError`` naming the key if one is missing."""
    for key, value in (("reference", suite.reference), ("candidate", suite.candidate)):
        if value is None:
            raise SpeedError(
                f"{suite.source}: {key}: missing: the speed command needs top-level `reference: "
                f"<model>` and `candidate: <model>` (models: {', '.join(suite.models)})"
            )
    return suite.reference, suite.candidate  # type: ignore[return-value]


def check_target_metric(metric: str, plan: Sequence[RunSpec]) -> str:
    """``metric`` in lower case, if every run's ``metrics`` and ``topk`` (where set) include it."""
    metric = metric.strip().lower()
    match = _TARGET_METRIC_RE.fullmatch(metric)
    if not match:
        raise SpeedError(f"--target-metric: expected <metric>@<k> like ndcg@10, got {metric!r}")
    family, k = match.group(1), int(match.group(2))
    for spec in plan:
        metrics, topk = spec.overrides.get("metrics"), spec.overrides.get("topk")
        topk = [topk] if isinstance(topk, int) else topk
        if (isinstance(metrics, list) and family not in [str(m).lower() for m in metrics]) or (
            isinstance(topk, list) and k not in topk
        ):
            raise SpeedError(
                f"--target-metric: {metric} is not computed for {spec.model} on {spec.dataset} "
                f"(metrics {metrics}, topk {topk})"
            )
    return metric


@dataclass(frozen=True)
class Side:
    """One model's run in a comparison: its spec, csv row and validation history (if any)."""

    spec: RunSpec
    row: Row | None
    history: History

    @property
    def ok(self) -> bool:
        return self.row is not None and self.row["status"] == Status.OK.value

    def number(self, column: str) -> float | None:
        text = (self.row or {}).get(column, "") if self.ok else ""
        return float(text) if text else None


def run_speed(
    suite: Suite,
    out_dir: Path,
    *,
    target_metric: str | None = None,
    command_prefix: Sequence[str] | None = None,
    data_root: Path | None = None,
    command_line: str = "",
    stream: TextIO | None = None,
) -> tuple[Path, str]:
    """Run the suite's reference and candidate (resuming), write ``speed.md``; return its path and
    text.

    Raises
    ------
    SpeedError
        If the suite has no ``reference``/``candidate`` or ``target_metric`` is not computed.
    """
    reference, candidate = comparison_models(suite)
    plan = suite.runs(models=[reference, candidate], data_root=data_root)
    metric = check_target_metric(target_metric, plan) if target_metric else None
    out_dir = out_dir.resolve()
    done = run_suite(
        suite,
        out_dir,
        models=[reference, candidate],
        command_prefix=command_prefix,
        data_root=data_root,
        command_line=command_line,
        stream=stream,
    )
    rows = {results.row_key(r): r for r in done.rows}
    histories = {e.key: e.valid_history for e in done.histories}
    pairs = []
    for dataset in suite.datasets:
        for seed in suite.seeds:
            specs = {s.model: s for s in plan if (s.dataset, s.seed) == (dataset, seed)}
            pairs.append(
                tuple(
                    Side(specs[m], rows.get(specs[m].key), histories.get(specs[m].key, []))
                    for m in (reference, candidate)
                )
            )
    text = render_speed(suite, pairs, metric, command_line)
    path = out_dir / SPEED_NAME
    atomic_write_text(path, text)
    return path, text


def render_speed(
    suite: Suite, pairs: Sequence[tuple[Side, Side]], metric: str | None, command_line: str
) -> str:
    """The whole ``speed.md``: a header, then one section per data set and seed."""
    sides = [side for pair in pairs for side in pair]
    ok_rows = [s.row for s in sides if s.ok and s.row is not None]
    reference, candidate = pairs[0][0].spec.model, pairs[0][1].spec.model
    implementation = {s.spec.model: s.row["implementation"] for s in sides if s.ok and s.row}
    dates = sorted(r["date"] for r in ok_rows if r.get("date"))
    hardware = sorted({r["hardware"] for r in ok_rows if r.get("hardware")})
    lines = [f"# Speed: {suite.name}", ""]
    if suite.description:
        lines += [suite.description, ""]
    runs = f"between {dates[0]} and {dates[-1]}" if dates else "not recorded"
    lines += [
        (
            f"- Candidate `{candidate}` ({implementation.get(candidate, 'no ok run')}) against "
            f"reference `{reference}` ({implementation.get(reference, 'no ok run')}): same data "
            "set, protocol and seed. Ratios are candidate / reference (`1/37`: 37 times less)."
        ),
        (
            f"- Target: the reference's best validation {_metric_name(pairs[0][0], metric)}. "
            "Time to target: a model's cumulative training seconds (evaluation excluded) at its "
            "first validation scoring at least the target."
        ),
        (
            "- Seconds per epoch: training seconds / epochs run (evaluation excluded). Peak "
            "memory: peak RSS of the run's process on CPU (data loading included), the CUDA "
            "allocator's peak (torch.cuda.max_memory_allocated) on a GPU."
        ),
        f"- Hardware: {'; '.join(hardware) or 'not recorded'}.",
        f"- Date: runs {runs}; this file written {now_iso()}.",
        (
            f"- Command: `{command_line or 'not recorded'}` (each run's own command is the first "
            "line of its log)."
        ),
        "",
    ]
    for pair in pairs:
        lines += _section(*pair, metric)
    if suite.notes:
        lines += ["Notes:", "", *(f"- {note}" for note in suite.notes), ""]
    return "\n".join(lines).rstrip() + "\n"


def _metric_name(side: Side, metric: str | None) -> str:
    return metric or str(side.spec.overrides.get("valid_metric", "valid_metric score"))


def _section(ref: Side, cand: Side, metric: str | None) -> list[str]:
    spec = ref.spec
    lines = [f"## {spec.dataset} (protocol {spec.protocol or 'unknown'}, seed {spec.seed})", ""]
    for side in (ref, cand):
        if not side.ok:
            error = (side.row or {}).get("error") or "not run"
            lines.append(f"- `{side.spec.model}` has no successful run ({error}).")
    if metric is None:
        target = ref.number("best_valid_score")
    else:
        target = time_to_target(ref.history, None, metric).best if ref.ok else None
    name = _metric_name(ref, metric)
    ttt = [time_to_target(s.history, target, metric) for s in (ref, cand)]
    if target is not None and ttt[1].reached:
        lines.append(
            f"- `{cand.spec.model}` reached `{ref.spec.model}`'s best validation {name} "
            f"({target:.{METRIC_DIGITS}f}) in {time_phrase(ratio(ttt[1].seconds, ttt[0].seconds))} "
            f"({ttt[1].seconds:.1f} s against {_seconds(ttt[0])} of training)."
        )
    elif target is not None and cand.ok:
        best = "no validation" if ttt[1].best is None else f"{ttt[1].best:.{METRIC_DIGITS}f}"
        lines.append(
            f"- `{cand.spec.model}` did not reach `{ref.spec.model}`'s best validation {name} "
            f"({target:.{METRIC_DIGITS}f}); its best was {best}."
        )
    per_epoch = [s.number("seconds_per_epoch") for s in (ref, cand)]
    if None not in per_epoch:
        lines.append(
            f"- A training epoch of `{cand.spec.model}` takes "
            f"{time_phrase(ratio(per_epoch[1], per_epoch[0]))} of one of `{ref.spec.model}` "
            f"({per_epoch[1]:.2f} s against {per_epoch[0]:.2f} s)."
        )
    heading = ["", f"reference `{ref.spec.model}`", f"candidate `{cand.spec.model}`", "ratio"]
    lines += ["", _md_row(heading), _md_row(["---"] * 4)]
    lines.append(
        _md_row(
            [
                "time to target (s)",
                _ttt_cell(ttt[0], target),
                _ttt_cell(ttt[1], target),
                format_ratio(ratio(ttt[1].seconds, ttt[0].seconds)),
            ]
        )
    )
    test_target = ref.number(f"{METRIC_PREFIX}{name.lower()}")
    if test_target is not None:
        ttt_test = [time_to_target(s.history, test_target, metric) for s in (ref, cand)]
        lines.append(
            _md_row(
                [
                    f"time to validation {name} ≥ the reference's final test {name} "
                    f"({test_target:.{METRIC_DIGITS}f}) (s)",
                    _ttt_cell(ttt_test[0], test_target),
                    _ttt_cell(ttt_test[1], test_target),
                    format_ratio(ratio(ttt_test[1].seconds, ttt_test[0].seconds)),
                ]
            )
        )
    bests = [t.best if s.ok else None for t, s in zip(ttt, (ref, cand))]
    lines.append(_number_row(f"best validation {name}", bests, f"{{:.{METRIC_DIGITS}f}}"))
    for label, column in (
        ("seconds per epoch", "seconds_per_epoch"),
        ("training seconds", "train_seconds"),
        ("epochs run", "epochs"),
        ("peak memory (MB)", "peak_memory_mb"),
    ):
        lines.append(
            _number_row(label, [s.number(column) for s in (ref, cand)], COST_FORMATS[column])
        )
    for column in metric_columns([s.row for s in (ref, cand) if s.ok and s.row]):
        values = [s.number(column) for s in (ref, cand)]
        lines.append(
            _number_row(f"test {column[len(METRIC_PREFIX) :]}", values, f"{{:.{METRIC_DIGITS}f}}")
        )
    logs = ", ".join(f"`{s.row['log']}`" for s in (ref, cand) if s.row and s.row.get("log"))
    return lines + ["", f"Logs: {logs or 'none'}.", ""]


def _seconds(ttt: TimeToTarget) -> str:
    return "n/a" if ttt.seconds is None else f"{ttt.seconds:.1f} s"


def _ttt_cell(ttt: TimeToTarget, target: float | None) -> str:
    if target is None:
        return "no target"
    if ttt.reached:
        return f"{ttt.seconds:.1f} (after epoch {ttt.epoch + 1})"  # type: ignore[operator]
    return "not reached" if ttt.best is None else f"not reached (best {ttt.best:.{METRIC_DIGITS}f})"


def _number_row(label: str, values: Sequence[float | None], fmt: str) -> str:
    cells = ["" if v is None else fmt.format(v) for v in values]
    return _md_row([label, *cells, format_ratio(ratio(values[1], values[0]))])


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
