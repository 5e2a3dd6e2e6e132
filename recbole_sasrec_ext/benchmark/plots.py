"""PNG plots of a benchmark (matplotlib ``Figure`` objects, no pyplot: no display, no global state).

``metrics.png``: test metrics (HR@10, NDCG@10) per model, one panel per data set, std error bars.
``convergence.png``: validation score against cumulative training seconds, one line per run.
``explanation.png``: RKSA explanations: attention over the history and the kernel mixture weights r.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from recbole_sasrec_ext.benchmark.aggregate import Table, mean_std, tested_metrics
from recbole_sasrec_ext.benchmark.results import METRIC_PREFIX, HistoryEntry

METRICS_PNG = "metrics.png"
CONVERGENCE_PNG = "convergence.png"
EXPLANATION_PNG = "explanation.png"
MAX_EXPLANATIONS = 4
MAX_HISTORY_SHOWN = 50  # the most recent items of a long history
DPI = 110
LOG_SCALE_RATIO = 100.0  # convergence x axis in log scale when the times span more than this


def write_plots(
    out_dir: Path, tables: Sequence[Table], histories: Sequence[HistoryEntry]
) -> list[Path]:
    """Write the plots that have data; return their paths."""
    written = []
    if tables:
        written.append(plot_metrics(tables, out_dir / METRICS_PNG))
    runs = [h for h in histories if h.valid_history]
    if runs:
        written.append(plot_convergence(runs, out_dir / CONVERGENCE_PNG))
    explained = [h for h in histories if h.explanation is not None]
    if explained:
        written.append(plot_explanations(explained[:MAX_EXPLANATIONS], out_dir / EXPLANATION_PNG))
    return written


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    return path


def plot_metrics(tables: Sequence[Table], path: Path) -> Path:
    """Grouped bars: one group per model, one bar per main metric, error bars = std over seeds."""
    width = max(6.0, 1.1 * max(len(t.models) for t in tables) + 2)
    fig = Figure(figsize=(width, 3.6 * len(tables)))
    axes = fig.subplots(len(tables), 1, squeeze=False)
    for ax, table in zip(axes[:, 0], tables):
        metrics = tested_metrics(table)
        x = np.arange(len(table.models))
        bar = 0.8 / max(len(metrics), 1)
        for i, column in enumerate(metrics):
            stats = [
                mean_std(m.series(column)) if m.series(column) else (np.nan, None)
                for m in table.models
            ]
            means = [s[0] for s in stats]
            errors = [s[1] or 0.0 for s in stats]
            ax.bar(
                x + (i - (len(metrics) - 1) / 2) * bar,
                means,
                bar,
                yerr=errors,
                capsize=3,
                label=column[len(METRIC_PREFIX) :].upper().replace("HIT", "HR"),
            )
        labels = [m.label if m.early_stopped else f"{m.label} ‡" for m in table.models]
        ax.set_xticks(x, labels, rotation=20, ha="right")  # ‡: not ended by early stopping
        profile = f", profile: {table.profile}" if table.profile else ""
        ax.set_title(f"{table.dataset} (protocol: {table.protocol or 'unknown'}{profile})")
        ax.set_ylabel("test score")
        ax.legend()
    return _save(fig, path)


def plot_convergence(histories: Sequence[HistoryEntry], path: Path) -> Path:
    """Validation score against cumulative training seconds, a panel per data set.

    ``valid_history[i].train_seconds`` is the cumulative training time (evaluation excluded) when
    that validation ran.
    """
    datasets = list(dict.fromkeys(h.dataset for h in histories))
    models = list(dict.fromkeys(h.model for h in histories))
    palette = matplotlib.colormaps["tab10"]
    colors = {m: palette(i % 10) for i, m in enumerate(models)}
    fig = Figure(figsize=(7, 3.6 * len(datasets)))
    axes = fig.subplots(len(datasets), 1, squeeze=False)
    for ax, dataset in zip(axes[:, 0], datasets):
        labelled = set()
        for entry in (h for h in histories if h.dataset == dataset):
            seconds = [p.train_seconds for p in entry.valid_history]
            scores = [p.valid_score for p in entry.valid_history]
            label = None if entry.model in labelled else entry.model
            labelled.add(entry.model)
            ax.plot(seconds, scores, marker=".", color=colors[entry.model], label=label, alpha=0.8)
        lows, highs = ax.xaxis.get_data_interval()
        if lows > 0 and highs / lows > LOG_SCALE_RATIO:
            ax.set_xscale("log")  # runs that differ by orders of magnitude in speed
        ax.set_title(f"{dataset}: validation score during training")
        ax.set_xlabel("cumulative training seconds")
        ax.set_ylabel("validation score")
        ax.legend()
    return _save(fig, path)


def plot_explanations(histories: Sequence[HistoryEntry], path: Path) -> Path:
    """Per explained run: attention over the history items, and the mixture weights r."""
    fig = Figure(figsize=(12, 3.4 * len(histories)))
    axes = fig.subplots(len(histories), 2, squeeze=False, gridspec_kw={"width_ratios": [4, 1]})
    for (ax_att, ax_mix), entry in zip(axes, histories):
        explanation = entry.explanation
        assert explanation is not None  # write_plots passes explained runs only
        attention = list(explanation.attention)
        history = list(explanation.history) + [""] * (len(attention) - len(explanation.history))
        shown = slice(max(0, len(attention) - MAX_HISTORY_SHOWN), len(attention))
        ax_att.bar(np.arange(len(attention[shown])), attention[shown])
        ax_att.set_xticks(np.arange(len(attention[shown])), history[shown], rotation=90, fontsize=7)
        ax_att.set_xlabel("history item (oldest → newest)")
        ax_att.set_ylabel("attention")
        ax_att.set_title(
            f"{entry.model} on {entry.dataset} seed {entry.seed}: user "
            f"{explanation.user} → item {explanation.recommended}"
        )
        mixture = explanation.mixture
        ax_mix.bar(list(mixture), list(mixture.values()), color="tab:orange")
        ax_mix.set_ylim(0, 1)
        ax_mix.set_title("kernel mixture r")
        ax_mix.tick_params(axis="x", rotation=30)
    return _save(fig, path)
