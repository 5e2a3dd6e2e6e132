"""Hyper-parameter search: ``python -m recbole_sasrec_ext tune``.

Each trial is one plugin run (:func:`recbole_sasrec_ext.apps.quick_start.run`, no ray); optuna's TPE
sampler proposes the values; trials are compared on the validation score (``valid_metric``) only:
the test result of a trial is never read. Writes ``<out>/trials.md`` (a table of every trial) and
``<out>/best.yaml`` (the fixed settings plus the best trial's values: pass it to ``run_recbole.py
--config_files``).

The search space is a yaml file, one entry per config key::

    learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
    hidden_dropout_prob: {type: uniform, low: 0.1, high: 0.5}
    n_layers: {type: int, low: 1, high: 3}
    loss_type: {type: choice, choices: [BCE, CE]}
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from recbole_sasrec_ext.common.argv import model_and_dataset, parse_overrides, swapped_argv
from recbole_sasrec_ext.common.errors import PluginError, TrainingDivergedError
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_FAILED, EXIT_OK
from recbole_sasrec_ext.config.validation import check_output_dir, strict_model_keys

#: Kinds of search dimension.
KINDS = ("uniform", "loguniform", "int", "choice")


@dataclass(frozen=True)
class Dimension:
    """One searched config key."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def suggest(self, trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "loguniform")


def read_space(path: os.PathLike) -> list[Dimension]:
    """The search space of a yaml file; :class:`PluginError` naming the file and key when bad."""
    from recbole_sasrec_ext.config.plugin_config import load_yaml_mapping

    if not os.path.isfile(path):
        raise PluginError(f"search space file not found: {path}")
    raw = load_yaml_mapping(str(path), yaml.SafeLoader)  # duplicate keys are errors too
    if not isinstance(raw, dict) or not raw:
        raise PluginError(f"{path}: expected a mapping of config keys to {{type: ...}}")
    dims = []
    for key, spec in raw.items():
        where = f"{path}: key '{key}'"
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            raise PluginError(f"{where}: expected {{type: one of {', '.join(KINDS)}, ...}}")
        kind = spec["type"]
        if kind == "choice":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise PluginError(f"{where}: 'choice' needs a non-empty list 'choices'")
            dims.append(Dimension(str(key), kind, choices=tuple(choices)))
            continue
        low, high = spec.get("low"), spec.get("high")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
        if not numbers or not low < high or (kind == "loguniform" and low <= 0):
            raise PluginError(f"{where}: '{kind}' needs numbers low < high" +
                              (" and low > 0" if kind == "loguniform" else ""))
        if kind == "int" and not all(float(v).is_integer() for v in (low, high)):
            raise PluginError(f"{where}: 'int' needs integer low and high")
        dims.append(Dimension(str(key), kind, float(low), float(high)))
    return dims


class AllTrialsDivergedError(Exception):
    """Every trial's training diverged (exit code 3)."""


class AllTrialsFailedError(Exception):
    """Every trial failed (exit code 1: not the user's input)."""


@dataclass
class Trial:
    number: int
    params: dict
    valid_score: float | None  # None: the run failed
    epochs: int | None = None
    train_seconds: float | None = None
    error: str | None = None
    diverged: bool = False


@dataclass
class TuneResult:
    trials: list[Trial] = field(default_factory=list)
    valid_metric: str = ""
    bigger: bool = True  # ``valid_metric_bigger``: higher validation scores are better

    @property
    def best(self) -> Trial:
        done = [t for t in self.trials if t.valid_score is not None
                and math.isfinite(t.valid_score)]
        if not done:
            diverged = all(t.diverged for t in self.trials)
            raise (AllTrialsDivergedError if diverged else AllTrialsFailedError)(
                f"every trial {'diverged' if diverged else 'failed'} "
                f"({len(self.trials)} trials): see the table for the errors"
            )
        pick = max if self.bigger else min
        return pick(done, key=lambda t: t.valid_score)

    def table(self) -> str:
        """Markdown table of every trial (validation scores only)."""
        keys = sorted({k for t in self.trials for k in t.params})
        head = ["trial", *keys, f"valid {self.valid_metric}", "epochs", "train s", "error"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for t in self.trials:
            cells = [str(t.number), *(_fmt(t.params.get(k)) for k in keys),
                     "" if t.valid_score is None else f"{t.valid_score:.4f}", str(t.epochs or ""),
                     "" if t.train_seconds is None else f"{t.train_seconds:.1f}", t.error or ""]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _selection(
    model: str, dataset: str, config_file_list: list[str] | None, config_dict: dict
) -> tuple[str, bool]:
    """The ``valid_metric`` the trials select on and ``valid_metric_bigger`` (whether higher is
    better), read from the config the runs resolve (RecBole's and the plugin's defaults < files <
    overrides, the model's yamls included)."""
    import warnings

    from recbole_sasrec_ext.config.plugin_config import Config

    with warnings.catch_warnings(), swapped_argv(sys.argv[:1]):
        warnings.simplefilter("ignore")  # each trial's run reports them
        try:
            config = Config(model=model, dataset=dataset, config_file_list=config_file_list,
                            config_dict=dict(config_dict))
        except (ValueError, NotImplementedError) as exc:  # as run() reports RecBole's checks
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PluginError(f"bad configuration: {first}") from exc
    # RecBole derives valid_metric_bigger from the metric; a value the user set is kept (tune has
    # always honoured it)
    bigger = config.external_config_dict.get("valid_metric_bigger", config["valid_metric_bigger"])
    return str(config["valid_metric"]), bigger is not False


def tune(model: str, dataset: str, space: list[Dimension], trials: int,
         config_file_list: list[str] | None = None, config_dict: dict | None = None,
         seed: int = 2020) -> TuneResult:
    """Run ``trials`` plugin runs with values from ``space``; the best by validation score."""
    import optuna

    from recbole_sasrec_ext.apps.quick_start import run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed = dict(config_dict or {})
    metric, bigger = _selection(model, dataset, config_file_list, fixed)
    result = TuneResult(valid_metric=metric, bigger=bigger)
    worst = float("-inf") if bigger else float("inf")
    study = optuna.create_study(direction="maximize" if bigger else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    for number in range(trials):
        trial = study.ask()
        params = {d.key: d.suggest(trial) for d in space}
        try:  # validation only: the test set is never evaluated
            summary = run(model, dataset, config_file_list, {**fixed, **params}, saved=False,
                          test=False)
        except PluginError:
            raise  # a bad setting fails every trial alike: stop at the first
        except Exception as exc:  # noqa: BLE001 (one diverging trial does not end the search)
            result.trials.append(Trial(number, params, None,
                                       error=f"{type(exc).__name__}: {exc}"[:120],
                                       diverged=isinstance(exc, TrainingDivergedError)))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        score = summary.best_valid_score
        result.trials.append(Trial(number, params, score, summary.epochs, summary.train_seconds))
        study.tell(trial, score if score is not None and math.isfinite(score) else worst)
    return result


def write(result: TuneResult, out: os.PathLike, model: str, dataset: str,
          config_file_list: list[str] | None, config_dict: dict | None) -> tuple[Path, Path]:
    """``<out>/trials.md`` and ``<out>/best.yaml``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "trials.md"
    table.write_text(f"# tune: {model} on {dataset}, "
                     f"selected on validation {result.valid_metric}\n\n"
                     f"{result.table()}\n", encoding="utf-8")
    result.best  # noqa: B018 (every trial failed: the table is written, no best.yaml)
    best = out / "best.yaml"
    settings = {}
    for file in config_file_list or []:
        with open(file, encoding="utf-8") as f:
            settings.update(yaml.safe_load(f) or {})
    settings.update(config_dict or {})
    settings.update(result.best.params)
    header = (f"# best of {len(result.trials)} trials (trial {result.best.number}, validation "
              f"{result.valid_metric} {result.best.valid_score:.4f}); "
              f"model {model}, data set {dataset}\n")
    best.write_text(header + yaml.safe_dump(settings, sort_keys=True), encoding="utf-8")
    return table, best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbole_sasrec_ext tune",
                                     description="Search hyper-parameters on the validation set.",
                                     epilog="Any --key=value is a fixed config override "
                                     "for every trial.")
    parser.add_argument("--model", "-m", default=None, help="model name (default SASRec)")
    parser.add_argument("--dataset", "-d", default=None, help="data set name (default ml-100k)")
    parser.add_argument("--space", required=True,
                        help="search space yaml (see the module docstring)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", default="tune", help="folder for trials.md and best.yaml")
    parser.add_argument("--config_files", default=None, help='fixed config files: "a.yaml b.yaml"')
    parser.add_argument("--seed", type=int, default=2020, help="seed of the sampler")
    args, rest = parser.parse_known_args(argv)
    overrides = {k: yaml.safe_load(v) for k, v in parse_overrides(parser, rest).items()}
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    files = args.config_files.split() if args.config_files else None
    try:
        for file in files or []:
            if not os.path.isfile(file):
                raise PluginError(f"config file not found: {file}")
        check_output_dir("--out", args.out)
        space = read_space(args.space)
        args.model, args.dataset = model_and_dataset(args.model, args.dataset, files)
        with strict_model_keys():
            result = tune(args.model, args.dataset, space, args.trials, files, overrides,
                          args.seed)
        table, best = write(result, args.out, args.model, args.dataset, files, overrides)
    except PluginError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (AllTrialsDivergedError, AllTrialsFailedError) as exc:
        print(result.table())
        print(f"error: {exc}", file=sys.stderr)
        diverged = isinstance(exc, AllTrialsDivergedError)
        return EXIT_DIVERGED if diverged else EXIT_FAILED
    print(result.table())
    print(f"best: trial {result.best.number} -> {best} (table: {table})")
    return EXIT_OK
