"""``results.md`` and the plots, made from an output folder's ``results.csv`` (plus the suite's
notes and command from ``suite.json`` and the histories for the plots), so ``report <dir>`` can
remake them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recbole_sasrec_ext.atomic_write import atomic_write_text
from recbole_sasrec_ext.benchmark import results
from recbole_sasrec_ext.benchmark.aggregate import (
    COST_COLUMNS,
    REFERENCE_MODEL,
    UNSET,
    Table,
    build_tables,
    differing_settings,
    failed_rows,
    mean_std,
    ok_rows,
    paired_test,
    tested_metrics,
)
from recbole_sasrec_ext.benchmark.results import METRIC_PREFIX, Row
from recbole_sasrec_ext.benchmark.suite import format_value

REPORT_NAME = "results.md"
PROTOCOLS = {
    "full": (
        "leave-one-out, the held-out item ranked against every item (RecBole does not remove the "
        "user's seen items for sequential models)"
    ),
    "full, seen removed": (
        "leave-one-out, the held-out item ranked against every item the user did not interact with "
        "before it (filter_seen: True; the target is never removed)"
    ),
    "uni100": (
        "leave-one-out, the held-out item ranked among 100 items the user never interacted with, "
        "drawn once per user (eval_neg_seed) and shared by every model"
    ),
}
METRIC_DIGITS = 4
COST_FORMATS = {
    "epochs": "{:.4g}",
    "seconds_per_epoch": "{:.2f}",
    "train_seconds": "{:.1f}",
    "peak_memory_mb": "{:.0f}",
}


def write_report(out_dir: Path) -> list[Path]:
    """Write ``results.md`` and the PNG plots into ``out_dir``; return the files written.

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` has no ``results.csv``.
    """
    from recbole_sasrec_ext.benchmark import plots  # matplotlib only when plotting

    csv_path = out_dir / results.CSV_NAME
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: no such file (run a suite into {out_dir} first)")
    rows = results.read_rows(csv_path)
    meta = results.read_meta(out_dir)
    tables = build_tables(rows, meta.get("models", []))
    report = out_dir / REPORT_NAME
    atomic_write_text(report, render_markdown(rows, meta, tables))
    histories = results.read_histories(out_dir / results.HISTORIES_NAME)
    return [report, *plots.write_plots(out_dir, tables, histories)]


def render_markdown(rows: Sequence[Row], meta: Mapping[str, Any], tables: list[Table]) -> str:
    """The whole report; a pure function of the csv rows, the suite metadata and the tables."""
    lines = _header(rows, meta, tables)
    for table in tables:
        lines += _table_section(table, meta.get("notes", []))
    lines += _failed_section(failed_rows(rows))
    return "\n".join(lines).rstrip() + "\n"


def format_metric(values: Sequence[float]) -> str:
    """``0.1234 ± 0.0056`` (sample std over seeds), or ``0.1234`` for one seed."""
    mean, std = mean_std(values)
    text = f"{mean:.{METRIC_DIGITS}f}"
    return text if std is None else f"{text} ± {std:.{METRIC_DIGITS}f}"


def _header(rows: Sequence[Row], meta: Mapping[str, Any], tables: list[Table]) -> list[str]:
    dates = sorted(r["date"] for r in rows if r.get("date"))
    n_failed = len(failed_rows(rows))
    lines = [f"# Benchmark: {meta.get('suite', 'results')}", ""]
    if meta.get("description"):
        lines += [meta["description"], ""]
    span = f"; run between {dates[0]} and {dates[-1]}" if dates else ""
    lines.append(
        f"- Runs in {results.CSV_NAME}: {len(rows)} ({len(ok_rows(rows))} ok, "
        f"{n_failed} failed){span}."
    )
    for label, column in (("Hardware", "hardware"), ("Versions", "versions")):
        values = sorted({r[column] for r in rows if r.get(column)})
        lines.append(f"- {label}: {'; '.join(values) or 'not recorded'}.")
    commands = meta.get("commands") or []
    lines.append("- Command: " + (", ".join(f"`{c}`" for c in commands) or "not recorded") + ".")
    for protocol in dict.fromkeys(t.protocol for t in tables):
        lines.append(f"- Protocol `{protocol}`: {PROTOCOLS.get(protocol, 'as configured')}.")
    lines.append(
        "- Values: test-set metrics, mean ± sample standard deviation (ddof=1) over seeds (the "
        "value alone with one seed); the best mean of each metric column is in **bold**. Epochs, "
        "s/epoch, train s (training seconds) and peak MB (peak memory) are means over seeds."
    )
    return [*lines, ""]


def _table_section(table: Table, notes: Sequence[str]) -> list[str]:
    metric_names = [c[len(METRIC_PREFIX) :] for c in table.metrics]
    headings = ["model", "seeds", *metric_names, *(h for _, h in COST_COLUMNS)]
    best = {
        c: max(round(mean_std(m.series(c))[0], METRIC_DIGITS) for m in table.models if m.series(c))
        for c in table.metrics
        if any(m.series(c) for m in table.models)
    }
    lines = [
        f"## {table.dataset} (protocol: {table.protocol or 'unknown'})",
        "",
        _md_row(headings),
        _md_row(["---"] * len(headings)),
    ]
    for model in table.models:
        cells = [model.label, str(len(model.seeds))]
        for column in table.metrics:
            series = model.series(column)
            text = format_metric(series) if series else ""
            bold = series and round(mean_std(series)[0], METRIC_DIGITS) == best[column]
            cells.append(f"**{text}**" if bold else text)
        for column, _ in COST_COLUMNS:
            series = model.series(column)
            cells.append(COST_FORMATS[column].format(mean_std(series)[0]) if series else "")
        lines.append(_md_row(cells))
    lines += [""] + _paired_section(table) + _notes(table, notes)
    return lines


def _paired_section(table: Table) -> list[str]:
    reference = table.reference
    others = [m for m in table.models if m is not reference]
    if reference is None or not others:
        reason = f"no {REFERENCE_MODEL} runs" if reference is None else "no other models"
        return [f"Paired t-test against {REFERENCE_MODEL}: n/a ({reason}).", ""]
    metrics = tested_metrics(table)
    names = [c[len(METRIC_PREFIX) :] for c in metrics]
    title = (
        f"Paired t-test against {reference.label} (Δ = model − {REFERENCE_MODEL}; "
        "scipy.stats.ttest_rel over the seeds both have):"
    )
    lines = [
        title,
        "",
        _md_row(["model", *names]),
        _md_row(["---"] * (len(names) + 1)),
    ]
    for model in others:
        tests = [paired_test(model.values.get(c, {}), reference.values.get(c, {})) for c in metrics]
        lines.append(_md_row([model.label, *(t.describe() for t in tests)]))
    return lines + [""]


def _notes(table: Table, notes: Sequence[str]) -> list[str]:
    implementations = [
        f"{m.label} = `{m.implementation}`" for m in table.models if m.implementation
    ]
    lines = ["Notes:", ""]
    if implementations:
        lines.append(f"- Implementations: {', '.join(implementations)}.")
    for key, values in differing_settings(table).items():
        shown = "; ".join(f"{label} = {_setting(v)}" for label, v in values.items())
        lines.append(f"- `{key}` differs between models: {shown}.")
    lines += [f"- {note}" for note in notes]
    return lines + [""] if len(lines) > 2 else []


def _failed_section(rows: Sequence[Row]) -> list[str]:
    lines = ["## Failed runs", ""]
    if not rows:
        return lines + ["None.", ""]
    lines += [_md_row(["model", "dataset", "seed", "error", "log"]), _md_row(["---"] * 5)]
    for row in rows:
        lines.append(
            _md_row(
                [
                    row["model"],
                    row["dataset"],
                    row["seed"],
                    row.get("error", ""),
                    row.get("log", ""),
                ]
            )
        )
    return lines + [""]


def _setting(value: Any) -> str:
    return "default" if value is UNSET else f"`{format_value(value)}`"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
