"""Turn ``results.csv`` rows into per-data-set tables: values by seed, mean ± std, paired tests.

Used by the markdown report and the plots; it reads nothing but the rows it is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from recbole_sasrec_ext.benchmark.results import METRIC_PREFIX, Row, Status, metric_columns

STOPPED_EARLY = "early_stopping"  # results.csv's stopped_by of a run that early-stopped
STOPPED_ONE_PASS = "one_pass"  # a model fitted in one pass (Pop): nothing to converge
ENDED_ON_ITS_OWN = frozenset({STOPPED_EARLY, STOPPED_ONE_PASS})  # rows the tables do not mark
SEED_TEST_MIN_SEEDS = 3  # the seed-level t-test is shown from this many common seeds
REFERENCE_MODEL = "SASRec"  # the plugin's SASRec: every other model is tested against it
MAIN_METRICS = ("hit@10", "ndcg@10")
UNSET = object()  # an override a model does not set (it keeps its default)
# (csv column, table heading): cost columns shown after the metrics.
COST_COLUMNS = (
    ("epochs", "epochs"),
    ("seconds_per_epoch", "s/epoch"),
    ("train_seconds", "train s"),
    ("peak_memory_mb", "peak MB"),
)


@dataclass
class ModelSummary:
    """The ok runs of one model configuration (model + config hash) on one data set and protocol."""

    label: str
    model: str
    config_hash: str
    implementation: str
    overrides: dict[str, Any]
    values: dict[str, dict[int, float]] = field(default_factory=dict)  # column -> seed -> value
    stopped_by: dict[int, str] = field(default_factory=dict)  # seed -> results.csv's stopped_by
    per_user: dict[int, str] = field(default_factory=dict)  # seed -> per-user file (relative)

    @property
    def early_stopped(self) -> bool:
        """Whether every seed's run ended by early stopping or was fitted in one pass (else the
        table marks the row)."""
        return bool(self.stopped_by) and all(
            v in ENDED_ON_ITS_OWN for v in self.stopped_by.values()
        )

    def stopped_text(self) -> str:
        """``early stopping``, ``epoch cap (3 epochs)``, ``not recorded``; counts when seeds
        differ."""
        cap = self.overrides.get("epochs")
        names = {
            STOPPED_EARLY: "early stopping",
            STOPPED_ONE_PASS: "one pass (nothing to iterate)",
            "epoch_cap": (
                "epoch cap" if cap is None else f"epoch cap ({cap} epoch{'s' * (cap != 1)})"
            ),
            "timeout": "timeout",
            "": "not recorded",
        }
        counts: dict[str, int] = {}
        for seed in self.seeds:
            text = names.get(self.stopped_by.get(seed, ""), self.stopped_by.get(seed, ""))
            counts[text] = counts.get(text, 0) + 1
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{text} ({n} seeds)" for text, n in counts.items())

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for by_seed in self.values.values() for seed in by_seed})

    def series(self, column: str) -> list[float]:
        by_seed = self.values.get(column, {})
        return [by_seed[s] for s in sorted(by_seed)]


@dataclass
class Table:
    """One data set under one protocol."""

    dataset: str
    protocol: str
    metrics: list[str]  # csv columns ``test_<metric>``, in report order
    models: list[ModelSummary]
    profile: str = ""  # the suite's run budget ("" without profiles)

    @property
    def reference(self) -> ModelSummary | None:
        """The plugin's SASRec (its last configuration when there are several)."""
        refs = [m for m in self.models if m.model == REFERENCE_MODEL]
        return refs[-1] if refs else None


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of a model against the reference over their common seeds."""

    n: int
    mean_diff: float | None
    p_value: float | None

    def describe(self) -> str:
        if self.n < 2:
            return "n/a (1 seed)" if self.n == 1 else "n/a (no common seeds)"
        if self.p_value is None:
            return f"{self.mean_diff:+.4f}, p n/a (constant difference, n={self.n})"
        return f"{self.mean_diff:+.4f}, p = {self.p_value:.4g} (n={self.n})"


def parse_float(cell: str | None) -> float | None:
    try:
        value = float(cell) if cell not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1); the std is None for a single value."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), (float(array.std(ddof=1)) if array.size > 1 else None)


def paired_test(values: Mapping[int, float], reference: Mapping[int, float]) -> PairedTest:
    """``scipy.stats.ttest_rel(model, reference)`` over the seeds both have (sorted by seed)."""
    common = sorted(set(values) & set(reference))
    if len(common) < 2:
        return PairedTest(len(common), None, None)
    a = np.array([values[s] for s in common])
    b = np.array([reference[s] for s in common])
    p_value = float(stats.ttest_rel(a, b).pvalue)
    return PairedTest(
        len(common), float((a - b).mean()), p_value if math.isfinite(p_value) else None
    )


def ok_rows(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.get("status") == Status.OK.value]


def failed_rows(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.get("status") != Status.OK.value]


def build_tables(rows: Sequence[Row], model_order: Sequence[str] = ()) -> list[Table]:
    """Group ok rows by (data set, protocol, profile), then by (model, config hash), in a stable
    order."""
    good = ok_rows(rows)
    order = {m: i for i, m in enumerate(dict.fromkeys([*model_order, *(r["model"] for r in good)]))}
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for row in good:
        key = (row["dataset"], row.get("protocol", ""), row.get("profile", ""))
        groups.setdefault(key, []).append(row)
    tables = []
    for (dataset, protocol, profile), group in groups.items():
        metrics = [
            c
            for c in metric_columns(group)
            if any(parse_float(r.get(c)) is not None for r in group)
        ]
        summaries: dict[tuple[str, str], ModelSummary] = {}
        for row in group:
            summary = summaries.get((row["model"], row["config_hash"]))
            if summary is None:
                summary = summaries[(row["model"], row["config_hash"])] = ModelSummary(
                    label=row["model"],
                    model=row["model"],
                    config_hash=row["config_hash"],
                    implementation=row.get("implementation", ""),
                    overrides=json.loads(row["overrides"]) if row.get("overrides") else {},
                )
            seed = int(row["seed"])
            summary.stopped_by[seed] = row.get("stopped_by", "")
            if row.get("per_user"):
                summary.per_user[seed] = row["per_user"]
            for column in [*metrics, *(c for c, _ in COST_COLUMNS)]:
                value = parse_float(row.get(column))
                if value is not None:
                    summary.values.setdefault(column, {})[int(row["seed"])] = value
        models = sorted(
            summaries.values(), key=lambda s: order[s.model]
        )  # stable: csv order within
        for summary in models:
            if sum(m.model == summary.model for m in models) > 1:
                summary.label = f"{summary.model} [{summary.config_hash[:6]}]"
        tables.append(Table(dataset, protocol, metrics, models, profile))
    return tables


def tested_metrics(table: Table) -> list[str]:
    """Metrics the paired test is run on: the main ones present, else all."""
    main = [c for c in table.metrics if c[len(METRIC_PREFIX) :] in MAIN_METRICS]
    return main or table.metrics


def differing_settings(table: Table) -> dict[str, dict[str, Any]]:
    """Override keys whose value differs between the models of the table: key -> label -> value.

    A model that does not set the key has the value ``UNSET`` (it keeps its default).
    """
    keys = dict.fromkeys(k for m in table.models for k in m.overrides)
    differing = {}
    for key in keys:
        values = {m.label: m.overrides.get(key, UNSET) for m in table.models}
        if (
            len({"\0" if v is UNSET else json.dumps(v, sort_keys=True) for v in values.values()})
            > 1
        ):
            differing[key] = values
    return differing
