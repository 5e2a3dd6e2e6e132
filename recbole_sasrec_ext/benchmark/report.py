"""``results.md`` and the plots, made from an output folder's ``results.csv`` (plus the suite's
notes and command from ``suite.json`` and the histories for the plots), so ``report <dir>`` can
remake them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recbole_sasrec_ext.benchmark import results
from recbole_sasrec_ext.benchmark.aggregate import (
    COST_COLUMNS,
    REFERENCE_MODEL,
    SEED_TEST_MIN_SEEDS,
    UNSET,
    ModelSummary,
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
from recbole_sasrec_ext.benchmark.significance import (
    ALPHA,
    MARKER,
    WILCOXON_ZERO_METHOD,
    format_p,
    mean_over_seeds,
    tests_against_reference,
)
from recbole_sasrec_ext.benchmark.suite import format_value
from recbole_sasrec_ext.common.atomic_write import atomic_write_text
from recbole_sasrec_ext.evaluation import per_user
from recbole_sasrec_ext.evaluation.per_user import PerUser

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
NOT_EARLY_STOPPED = "‡"  # marks a row whose training did not end by early stopping
USER_TEST_METRIC = "ndcg@10"  # the per-user tests' metric when the runs wrote it
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
    atomic_write_text(report, render_markdown(rows, meta, tables, load_per_user(out_dir, tables)))
    histories = results.read_histories(out_dir / results.HISTORIES_NAME)
    return [report, *plots.write_plots(out_dir, tables, histories)]


def load_per_user(out_dir: Path, tables: Sequence[Table]) -> dict[str, PerUser]:
    """The per-user files the tables' runs name (relative path -> values); a missing or unreadable
    file is left out (its model then has no per-user test)."""
    loaded = {}
    for table in tables:
        for model in table.models:
            for path in model.per_user.values():
                try:
                    loaded[path] = per_user.load(out_dir / path)
                except (OSError, ValueError):
                    continue
    return loaded


def render_markdown(
    rows: Sequence[Row],
    meta: Mapping[str, Any],
    tables: list[Table],
    per_user_values: Mapping[str, PerUser] | None = None,
) -> str:
    """The whole report; a pure function of the csv rows, the suite metadata, the tables and the
    per-user values (relative path -> values, as in results.csv's ``per_user``)."""
    lines = _header(rows, meta, tables)
    for table in tables:
        anchors = (meta.get("anchors") or {}).get(table.dataset, {})
        lines += _table_section(table, meta.get("notes", []), per_user_values or {}, anchors)
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


def _table_section(
    table: Table, notes: Sequence[str], per_user_values: Mapping[str, PerUser],
    anchors: Mapping[str, str] | None = None,
) -> list[str]:
    """The data set's table; ``anchors`` (model -> published numbers under the same protocol)
    add a column ``published`` when given."""
    anchors = anchors or {}
    metric_names = [c[len(METRIC_PREFIX) :] for c in table.metrics]
    headings = ["model", "seeds", *metric_names, *(["published"] if anchors else []),
                "stopped by", *(h for _, h in COST_COLUMNS)]
    best = {
        c: max(round(mean_std(m.series(c))[0], METRIC_DIGITS) for m in table.models if m.series(c))
        for c in table.metrics
        if any(m.series(c) for m in table.models)
    }
    profile = f", profile: {table.profile}" if table.profile else ""
    lines = [
        f"## {table.dataset} (protocol: {table.protocol or 'unknown'}{profile})",
        "",
        _md_row(headings),
        _md_row(["---"] * len(headings)),
    ]
    for model in table.models:
        label = model.label if model.early_stopped else f"{model.label} {NOT_EARLY_STOPPED}"
        cells = [label, str(len(model.seeds))]
        for column in table.metrics:
            series = model.series(column)
            text = format_metric(series) if series else ""
            bold = series and round(mean_std(series)[0], METRIC_DIGITS) == best[column]
            cells.append(f"**{text}**" if bold else text)
        if anchors:
            cells.append(anchors.get(model.model, ""))
        cells.append(model.stopped_text())
        for column, _ in COST_COLUMNS:
            series = model.series(column)
            cells.append(COST_FORMATS[column].format(mean_std(series)[0]) if series else "")
        lines.append(_md_row(cells))
    lines.append("")
    if not all(m.early_stopped for m in table.models):
        lines += [
            f"{NOT_EARLY_STOPPED} did not end by early stopping (see *stopped by*): it trained "
            "until its epoch cap, so it may not have converged.",
            "",
        ]
    lines += _user_test_section(table, per_user_values)
    lines += _paired_section(table) + _notes(table, notes)
    return lines


def _user_values(
    model: ModelSummary, seeds: Sequence[int], metric: str, per_user_values: Mapping[str, PerUser]
) -> tuple[np.ndarray, np.ndarray] | None:
    """(users, values) of ``metric`` for ``model``, averaged over ``seeds`` (None: a file is
    missing or lacks the metric)."""
    runs = []
    for seed in seeds:
        loaded = per_user_values.get(model.per_user.get(seed, ""))
        if loaded is None or metric not in loaded.values:
            return None
        runs.append((loaded.users, loaded.values[metric]))
    return mean_over_seeds(runs) if runs else None


def _user_test_metric(table: Table, per_user_values: Mapping[str, PerUser]) -> str | None:
    names = {m for p in per_user_values.values() for m in p.values}
    tested = [c[len(METRIC_PREFIX) :] for c in tested_metrics(table)]
    preferred = [m for m in (USER_TEST_METRIC, *tested) if m in names]
    return preferred[0] if preferred else None


def _user_test_section(table: Table, per_user_values: Mapping[str, PerUser]) -> list[str]:
    """Per-user paired t-test and Wilcoxon test of each model against the reference, Holm-adjusted
    across the models of the table."""
    reference = table.reference
    metric = _user_test_metric(table, per_user_values)
    others = [m for m in table.models if m is not reference]
    title = f"Per-user paired tests against {REFERENCE_MODEL}"
    if reference is None or not others or metric is None:
        reason = (
            f"no {REFERENCE_MODEL} runs" if reference is None
            else "no other models" if not others
            else "no per-user metrics files"
        )
        return [f"{title}: n/a ({reason}).", ""]
    pairs, skipped = {}, []
    for model in others:
        seeds = sorted(set(model.per_user) & set(reference.per_user))
        values = _user_values(model, seeds, metric, per_user_values)
        ref_values = _user_values(reference, seeds, metric, per_user_values)
        if values is None or ref_values is None:
            skipped.append(model.label)
            continue
        pairs[model.label] = (values, ref_values)
    lines = [
        f"{title}{'' if reference.label == REFERENCE_MODEL else f' ({reference.label})'} on each "
        f"test user's {metric} (the same users in both runs; "
        f"with several seeds, each user's mean over the seeds both have): Δ% = (model − "
        f"{REFERENCE_MODEL}) / {REFERENCE_MODEL} of the mean; paired t-test "
        "(scipy.stats.ttest_rel) and Wilcoxon signed-rank test (scipy.stats.wilcoxon, "
        f"zero_method='{WILCOXON_ZERO_METHOD}': users with equal values in both runs, e.g. both 0, "
        "are left out; *differing* counts the rest); p-values Holm-adjusted across the "
        f"{len(pairs)} models, {MARKER} p < {ALPHA:g} after adjustment.",
        "",
        _md_row(["model", "users", "differing", metric, f"{REFERENCE_MODEL} {metric}", "Δ%",
                 "p (paired t, Holm)", "p (Wilcoxon, Holm)"]),
        _md_row(["---"] * 8),
    ]
    for label, test in tests_against_reference(pairs).items():
        delta = "n/a" if test.delta_pct is None else f"{test.delta_pct:+.1f}%"
        lines.append(
            _md_row([
                label, str(test.n_users), str(test.n_nonzero), f"{test.mean:.4f}",
                f"{test.reference_mean:.4f}", delta, format_p(test.p_t_holm),
                format_p(test.p_wilcoxon_holm),
            ])
        )
    lines.append("")
    if skipped:
        lines += [f"No per-user metrics for: {', '.join(skipped)}.", ""]
    return lines


def _paired_section(table: Table) -> list[str]:
    reference = table.reference
    others = [m for m in table.models if m is not reference]
    if reference is None or not others:
        reason = f"no {REFERENCE_MODEL} runs" if reference is None else "no other models"
        return [f"Seed-level paired t-test against {REFERENCE_MODEL}: n/a ({reason}).", ""]
    most = max(len(set(m.seeds) & set(reference.seeds)) for m in others)
    if most < SEED_TEST_MIN_SEEDS:
        return [
            f"Seed-level paired t-test against {REFERENCE_MODEL}: not shown (it needs at least "
            f"{SEED_TEST_MIN_SEEDS} common seeds; this table has at most {most}).",
            "",
        ]
    metrics = tested_metrics(table)
    names = [c[len(METRIC_PREFIX) :] for c in metrics]
    title = (
        f"Seed-level paired t-test against {reference.label} (Δ = model − {REFERENCE_MODEL}; "
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
