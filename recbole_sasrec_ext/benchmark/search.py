"""The validation search of a benchmark suite: the same small grid of learning rate and dropout
for every searched model, run on one seed and judged on validation only; the suite's own runs then
use each model's best setting, so that no row has more search behind it than another.

Suite key (optional)::

    search:
      seed: 2020                      # (int) the seed every setting runs with
      learning_rate: [0.001, 0.0005]  # (list of float > 0)
      dropout: [0.2, 0.5]             # (list of float in [0, 1))
      models:                         # (mapping) searched model -> the keys its dropout sets
        SASRec: [hidden_dropout_prob, attn_dropout_prob]
        GRU4Rec: [dropout_prob]

Each searched model gets ``len(learning_rate) x len(dropout)`` runs (the budget, the same for
all; a model with no dropout keys gets the learning rates only). ``python -m
recbole_sasrec_ext.benchmark SUITE --search --out DIR`` runs them into ``DIR/search`` (an output
folder of its own: resumable, with its own report) and writes ``DIR/search/chosen.json``: each
model's setting with the best validation ``valid_metric`` (the first in grid order on a tie),
once all of that model's settings have finished. A model whose own setting (its yaml's, or the
suite file's) lies off the grid has one more candidate: the suite's finished run on the search
seed, which is kept (``settings: {}``, ``own: true``) when its validation beats every grid point,
so a baseline is never moved from its recommended setting to a worse one. A later run of the
suite into ``DIR`` applies the chosen settings after every other layer (so they are part of
each run's key) and says so in the report's notes; a chosen value equal to the one the model
runs with anyway is no override, so runs already made with the model's own settings keep their
key and are not run again. Models the block does not list keep their settings (e.g. Pop, or a
row held to a paper's settings).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recbole_sasrec_ext.benchmark import results
from recbole_sasrec_ext.benchmark.results import Status
from recbole_sasrec_ext.common.atomic_write import atomic_write_text

SEARCH_DIR = "search"  # inside the suite's output folder
CHOSEN_NAME = "chosen.json"
SEARCH_KEYS = ("seed", "learning_rate", "dropout", "models")


@dataclass(frozen=True)
class SearchSpace:
    """A suite's ``search`` block."""

    seed: int
    learning_rates: tuple[float, ...]
    dropouts: tuple[float, ...]
    dropout_keys: Mapping[str, tuple[str, ...]]  # searched model -> the keys its dropout sets

    def settings(self, model: str) -> list[dict[str, Any]]:
        """Every setting of ``model``'s grid, learning rate outermost."""
        keys = self.dropout_keys[model]
        dropouts = self.dropouts if keys else (None,)
        return [{"learning_rate": lr, **{key: dropout for key in keys}}
                for lr in self.learning_rates for dropout in dropouts]

    def budget(self, model: str) -> int:
        return len(self.settings(model))


@dataclass(frozen=True)
class Variant:
    """A run label that stands for ``model`` with ``settings`` applied after every other layer."""

    model: str
    settings: Mapping[str, Any]


def parse_search(fail: Any, value: Any, models: Mapping[str, Any]) -> SearchSpace | None:
    """The ``search`` block of a suite (None when absent); ``fail(key, message)`` makes the
    error that names the key."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail("search", f"must be a mapping of {', '.join(SEARCH_KEYS)}")
    unknown = [str(k) for k in value if k not in SEARCH_KEYS]
    if unknown:
        raise fail(f"search.{unknown[0]}", f"unknown key (allowed: {', '.join(SEARCH_KEYS)})")
    missing = [k for k in SEARCH_KEYS if k not in value]
    if missing:
        raise fail(f"search.{missing[0]}", "missing")
    seed = value["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise fail("search.seed", f"must be an integer >= 0, got {seed!r}")
    rates = _numbers(fail, "search.learning_rate", value["learning_rate"], 0.0, None)
    dropouts = _numbers(fail, "search.dropout", value["dropout"], 0.0, 1.0, low_closed=True)
    block = value["models"]
    if not isinstance(block, dict) or not block:
        raise fail("search.models", "must be a non-empty mapping of model -> [dropout keys]")
    keys: dict[str, tuple[str, ...]] = {}
    for model, names in block.items():
        if model not in models:
            raise fail(f"search.models.{model}",
                       f"not a model of this suite ({', '.join(models)})")
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise fail(f"search.models.{model}", "must be a list of config keys (may be empty)")
        keys[model] = tuple(names)
    return SearchSpace(int(seed), rates, dropouts, keys)


def _numbers(fail: Any, where: str, value: Any, low: float, high: float | None,
             low_closed: bool = False) -> tuple[float, ...]:
    ok = isinstance(value, list) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool)
        and (v >= low if low_closed else v > low) and (high is None or v < high) for v in value)
    if not ok:
        bounds = f"[{low:g}, {high:g})" if high is not None else f"> {low:g}"
        raise fail(where, f"must be a non-empty list of numbers {bounds}, got {value!r}")
    if len(set(value)) != len(value):
        raise fail(where, f"repeated value in {value!r}")
    return tuple(float(v) for v in value)


def variant_label(model: str, settings: Mapping[str, Any]) -> str:
    """``SASRec-lr0.0005-do0.5``: names a search run (its rows, logs and files)."""
    dropout = [v for k, v in settings.items() if k != "learning_rate"]
    label = f"{model}-lr{settings['learning_rate']:g}"
    return label + (f"-do{dropout[0]:g}" if dropout else "")


def search_variants(space: SearchSpace, models: Sequence[str] | None = None) -> dict[str, Variant]:
    """Label -> variant for every setting of every searched model (of ``models``, if given)."""
    chosen = [m for m in space.dropout_keys if models is None or m in models]
    return {variant_label(m, s): Variant(m, s) for m in chosen for s in space.settings(m)}


def choose(space: SearchSpace, rows: Sequence[results.Row],
           own_scores: Mapping[str, float] | None = None) -> dict[str, Any]:
    """``chosen.json``'s content from the search folder's rows: for each searched model whose
    every setting finished, the setting with the best ``best_valid_score``. ``own_scores``:
    model -> the validation score of its own setting on the search seed (the suite's finished
    run); it wins only when strictly better than every grid point (on the grid it is one of them
    and scores the same), and then the chosen settings are empty: the model keeps its own."""
    scores = {r["model"]: float(r["best_valid_score"]) for r in rows
              if r["status"] == Status.OK.value and r.get("best_valid_score") not in ("", None)
              and int(r["seed"]) == space.seed}
    chosen: dict[str, Any] = {}
    for model in space.dropout_keys:
        tried = [(s, scores.get(variant_label(model, s))) for s in space.settings(model)]
        if any(score is None for _, score in tried):
            continue  # not every setting has finished: nothing is chosen yet
        best = max(range(len(tried)), key=lambda i: (tried[i][1], -i))
        entry: dict[str, Any] = {
            "settings": tried[best][0],
            "best_valid_score": tried[best][1],
            "tried": [{"settings": s, "best_valid_score": score} for s, score in tried],
        }
        own = (own_scores or {}).get(model)
        if own is not None:
            entry["own_best_valid_score"] = own
            entry["own"] = own > tried[best][1]
            if entry["own"]:
                entry.update(settings={}, best_valid_score=own)
        chosen[model] = entry
    return {"seed": space.seed, "models": chosen}


def write_choices(folder: Path, content: Mapping[str, Any]) -> Path:
    path = folder / CHOSEN_NAME
    atomic_write_text(path, json.dumps(content, indent=2, sort_keys=True) + "\n")
    return path


def read_choices(out_dir: Path) -> dict[str, dict[str, Any]] | None:
    """model -> chosen settings from ``out_dir/search/chosen.json`` (None when there is none).

    Raises
    ------
    ResultsError
        If the file exists but is not a search's choices.
    """
    path = out_dir / SEARCH_DIR / CHOSEN_NAME
    if not path.is_file():
        return None
    try:
        models = json.loads(path.read_text(encoding="utf-8"))["models"]
        return {str(m): dict(entry["settings"]) for m, entry in models.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise results.ResultsError(f"{path}: not a search's choices ({exc})") from None


def choices_note(space: SearchSpace, choices: Mapping[str, Mapping[str, Any]],
                 valid_metric: str) -> str:
    """One line for the report's notes: the budget and what was chosen."""
    budgets = sorted({space.budget(m) for m in space.dropout_keys})
    chosen = "; ".join(
        f"{m}: " + (", ".join(f"{k}={v:g}" for k, v in s.items())
                    or "its own settings (better than every grid point)")
        for m, s in choices.items()
    )
    return (
        f"Validation search (seed {space.seed}, {valid_metric} on validation only): every searched "
        f"model got the same grid, learning_rate {list(space.learning_rates)} x dropout "
        f"{list(space.dropouts)} ({' or '.join(map(str, budgets))} runs each; a model's own "
        f"setting off the grid competes too, from its finished run on that seed); "
        f"chosen: {chosen}. "
        f"Not searched: the models the suite's search block does not list."
    )


def own_overrides(
    settings: Mapping[str, Any], own: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``settings`` less those equal to the value the model runs with anyway.

    ``own`` holds the model's final values, one mapping per data set of the suite. A value equal
    to the model's own on every data set is no override: the runs keep their key, so rows already
    made with the model's own settings stay done and are not run again (their results would be
    the same)."""
    return {key: value for key, value in settings.items()
            if not own or any(v.get(key) != value for v in own)}


def without_own_values(
    choices: Mapping[str, Mapping[str, Any]],
    own: Callable[[str], Sequence[Mapping[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """:func:`own_overrides` of each model's chosen settings (``own(model)``: its final values)."""
    return {model: own_overrides(settings, own(model)) for model, settings in choices.items()}


def with_choices(suite: Any, choices: Mapping[str, Mapping[str, Any]]) -> Any:
    """``suite`` with each chosen model's settings applied last (see ``Suite.variants``)."""
    variants = {m: Variant(m, dict(choices.get(m, {}))) for m in suite.models}
    return replace(suite, variants=variants)
