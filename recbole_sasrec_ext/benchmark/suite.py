"""Benchmark suites: find, load and validate a suite file, and expand it into single runs.

A suite is a yaml file (``properties/benchmark/<name>.yaml``) with these top-level keys; any other
key is an error that names it:

``description`` (str)
    One paragraph shown at the top of ``results.md``.
``timeout_s`` (number > 0, default 3600)
    Wall-clock limit of one run; a run past it is killed and recorded as ``failed``.
``seeds`` (list of int, default ``[2020]``)
    Every model x data set pair runs once per seed.
``common`` (mapping)
    RecBole config overrides given to every run (protocol, split, metrics, ...).
``datasets`` (mapping, required)
    ``name: {overrides}``: the data sets, with overrides for every run on that data set.
``models`` (mapping, required)
    ``name: {overrides}``: the models, with overrides for every run of that model. The reserved
    sub-key ``per_dataset: {dataset: {overrides}}`` holds overrides for one model on one data set.
``notes`` (list of str)
    Printed below every table of ``results.md`` (epoch caps, settings that differ and why).
``anchors`` (mapping, optional)
    ``data set: {model: text}``: published numbers under the same protocol, shown in a column
    ``published`` beside the model's row of that data set's table (e.g. ``"0.0531 / 0.0921
    (SASRec+ with sampled softmax)"``).
``profiles`` (mapping, optional)
    ``name: {budget}``: run budgets chosen with ``--profile NAME`` (required when the suite has
    profiles). A budget may hold ``timeout_s``, ``notes`` (added to the suite's), ``common``,
    ``datasets`` and ``models`` (with ``per_dataset``), merged after the suite's own layers, e.g.
    ``cpu`` with epoch caps that fit a 2-core machine and ``gpu`` without caps.
``search`` (mapping, optional)
    The validation search: one grid of learning rate and dropout for every model it lists, run
    on one seed with ``--search`` (``search.py``, where the block's keys are described).
``reference``, ``candidate`` (str, optional)
    Two of the suite's models, compared side by side by the ``speed`` command (``speed.py``); the
    plain benchmark ignores them.

A model entry may name a class by import path, ``Label: {class: my_package.my_module:MyModel,
...}``: a RecBole model class (checked when the suite is loaded, so the module must be importable,
e.g. from the current folder or ``PYTHONPATH``) that runs through the same pipeline under ``Label``.
A model entry, or a profile's model layer, may give its runs' thread count, ``threads: N`` (the
runner's, not a config override, and not part of the run key): their OpenMP/MKL threads; with
``--jobs`` such a run takes N of the places and starts before runs that take fewer. A run with
the config override ``nproc: P`` (``run_recbole.py --nproc=P``: P training processes,
docs/scaling.md) takes P times as many places, and each process gets the threads its share allows.

Overrides are merged ``common`` < ``datasets[d]`` < ``models[m]`` < ``models[m].per_dataset[d]``,
then the chosen profile's layers in the same order.
A relative ``data_path`` is resolved against the data root (the repository root by default).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from recbole_sasrec_ext.benchmark.search import SearchSpace, Variant, parse_search, search_variants
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.paths import DATASET_NAME, REPO_ROOT
from recbole_sasrec_ext.common.strict_yaml import UniqueKeysMixin
from recbole_sasrec_ext.config.validation import check_overrides
from recbole_sasrec_ext.contract.plan import phase_modes, protocol_label

COMPARISON_KEYS = ("reference", "candidate")  # read only by the ``speed`` command
BENCHMARK_KEYS = (
    "description", "timeout_s", "seeds", "common", "datasets", "models", "notes", "profiles",
    "anchors", "search",
)
PROFILE_KEYS = ("timeout_s", "notes", "common", "datasets", "models")
SUITE_KEYS = BENCHMARK_KEYS + COMPARISON_KEYS
PER_DATASET_KEY = "per_dataset"
CLASS_KEY = "class"  # a model entry's import path ``package.module:Class``
# A model entry's (or a profile's model layer's) OpenMP/MKL thread count for its runs: the runner's,
# not a config override; with --jobs N such a run takes that many of the N places.
THREADS_KEY = "threads"
NPROC_KEY = "nproc"  # a config override: the run trains in that many processes
# Set by the runner itself: a suite may not override them.
RESERVED_OVERRIDES = frozenset({"model", "dataset", "seed"})
# Left out of the run key's hash, so that moving the data does not invalidate finished runs.
UNHASHED_OVERRIDES = frozenset({"data_path"})
DATA_PATH_KEY = "data_path"
PER_USER_DIR = "per_user"  # per-user test metrics of each run, inside the output folder
DEFAULT_TIMEOUT_S = 3600.0
DEFAULT_SEEDS = (2020,)
SUITE_SUFFIXES = (".yaml", ".yml")
RESERVED_SUITE_NAMES = frozenset({"report", "speed"})  # sub-commands of the CLI

_PACKAGE_PROPERTIES = "recbole_sasrec_ext.properties"
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODEL_RE = re.compile(r"(RecBole\.)?[A-Za-z][A-Za-z0-9_]*")
_DATASET_RE = DATASET_NAME  # also used in log file names
# Strings RecBole's command-line parser (eval, then a string fallback) reads back unchanged.
_CLASS_PATH_RE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
)
_PLAIN_STRING_RE = re.compile(r"[A-Za-z_/][A-Za-z0-9_@./:-]*")
_LITERAL_WORDS = frozenset({"true", "false", "none"})


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and the key."""


class _SuiteLoader(UniqueKeysMixin, yaml.SafeLoader):
    """Safe yaml loader that reads ``1e-3`` as a float (as RecBole does) and rejects duplicate
    keys."""


_SuiteLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass(frozen=True)
class RunSpec:
    """One single run: a model on a data set with a seed and its merged config overrides."""

    model: str
    dataset: str
    seed: int
    overrides: Mapping[str, Any]
    profile: str = ""  # the suite's chosen profile ("" for a suite without profiles)
    model_class: str | None = None  # import path of the model's class, when the suite names one
    threads: int | None = None  # the suite's ``threads`` for it (not hashed: results stay equal)

    @property
    def config_hash(self) -> str:
        """Short hash of the overrides (without ``data_path``), the profile and the model class:
        part of the resume key."""
        hashed = {k: v for k, v in self.overrides.items() if k not in UNHASHED_OVERRIDES}
        text = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
        if self.profile or self.model_class:
            text += json.dumps([self.profile, self.model_class])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    @property
    def key(self) -> tuple[str, str, int, str]:
        """``(model, dataset, seed, config_hash)``: a run with this key and status ok is done."""
        return (self.model, self.dataset, self.seed, self.config_hash)

    @property
    def log_name(self) -> str:
        profile = f"-{self.profile}" if self.profile else ""
        return f"{self.model}-{self.dataset}-{self.seed}{profile}.log"

    @property
    def processes(self) -> int:
        """Training processes of the run: its ``nproc`` override (1 when unset)."""
        return int(self.overrides.get(NPROC_KEY, 1))

    @property
    def run_name(self) -> str:
        """``<model>-<data set>-<seed>-<config hash>``: names the run's files and folders."""
        return f"{self.model}-{self.dataset}-{self.seed}-{self.config_hash}"

    @property
    def per_user_name(self) -> str:
        """Where the run writes its per-user test metrics, relative to the output folder."""
        return f"{PER_USER_DIR}/{self.run_name}.npz"

    @property
    def protocol(self) -> str:
        """``full``/``full, seen removed``/``uni100``/... from ``eval_args.mode`` (test mode when
        given per split) and ``filter_seen``."""
        eval_args = self.overrides.get("eval_args") or {}
        if "mode" not in eval_args:
            return ""
        test_mode = str(phase_modes(eval_args)["test"])
        return protocol_label(test_mode, self.overrides.get("filter_seen") is True)

    def args(self) -> list[str]:
        """Command-line arguments after the run command:
        ``--model M --dataset D --seed=S --key=value ... --per_user_file=...``."""
        args = ["--model", self.model_class or self.model, "--dataset", self.dataset]
        args.append(f"--seed={self.seed}")
        args += [f"--{key}={format_value(value)}" for key, value in self.overrides.items()]
        return [*args, f"--per_user_file={self.per_user_name}"]


@dataclass(frozen=True)
class Profile:
    """One run budget of a suite (``profiles.<name>``): layers merged after the suite's own."""

    name: str
    timeout_s: float | None = None
    notes: tuple[str, ...] = ()
    common: Mapping[str, Any] = field(default_factory=dict)
    datasets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    per_dataset: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    threads: Mapping[str, int] = field(default_factory=dict)  # model -> ``threads``


@dataclass(frozen=True)
class Suite:
    """A validated suite file; see the module docstring for the schema."""

    name: str
    source: Path
    description: str
    timeout_s: float
    seeds: tuple[int, ...]
    common: Mapping[str, Any]
    datasets: Mapping[str, Mapping[str, Any]]
    models: Mapping[str, Mapping[str, Any]]
    per_dataset: Mapping[str, Mapping[str, Mapping[str, Any]]]
    notes: tuple[str, ...]
    reference: str | None = None
    candidate: str | None = None
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    profile: str = ""  # the chosen profile (see with_profile)
    model_classes: Mapping[str, str] = field(default_factory=dict)  # label -> import path
    # data set -> model -> published numbers
    anchors: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    search: SearchSpace | None = None  # the ``search`` block
    # run label -> a model of the suite with settings applied last (the search's runs, or the
    # chosen settings); empty: one run label per model, as the file says
    variants: Mapping[str, Variant] = field(default_factory=dict)
    threads: Mapping[str, int] = field(default_factory=dict)  # model -> ``threads``

    def threads_of(self, model: str) -> int | None:
        """The thread count the suite (its chosen profile first) gives ``model``'s runs."""
        chosen = self.profiles[self.profile].threads if self.profile else {}
        return chosen.get(model, self.threads.get(model))

    def search_suite(self, models: Sequence[str] | None = None) -> Suite:
        """The suite of the validation search: every setting of every searched model (of
        ``models``, if given), on the search's seed.

        Raises
        ------
        SuiteError
            If the suite has no ``search`` block, or ``models`` names none it searches.
        """
        if self.search is None:
            raise SuiteError(f"{self.source}: search: the suite has no search block")
        variants = search_variants(self.search, models)
        if not variants:
            raise SuiteError(f"{self.source}: search.models: none of {', '.join(models or [])} "
                             f"is searched (the block lists {', '.join(self.search.dropout_keys)})")
        return replace(self, seeds=(self.search.seed,), variants=variants, anchors={})

    def with_profile(self, name: str | None) -> Suite:
        """This suite under profile ``name``: its layers merged last, its ``timeout_s`` and its
        notes after the suite's.

        Raises
        ------
        SuiteError
            If the suite has profiles and ``name`` is None, or ``name`` is not one of them.
        """
        names = ", ".join(self.profiles) or "none"
        if name is None:
            if self.profiles:
                raise SuiteError(
                    f"{self.source}: profiles: choose a run budget with --profile ({names})"
                )
            return self
        if name not in self.profiles:
            raise SuiteError(
                f"{self.source}: profiles: no profile {name!r} (the suite has {names})"
            )
        chosen = self.profiles[name]
        timeout_s = self.timeout_s if chosen.timeout_s is None else chosen.timeout_s
        return replace(self, profile=name, timeout_s=timeout_s, notes=self.notes + chosen.notes)

    def overrides(self, label: str, dataset: str, data_root: Path | None = None) -> dict[str, Any]:
        """Merged overrides of one run label (a model, or a variant of one) on one data set, with
        ``data_path`` made absolute."""
        variant = self.variants.get(label, Variant(label, {}))
        model = variant.model
        merged = {**self.common, **self.datasets[dataset], **self.models[model]}
        merged.update(self.per_dataset.get(model, {}).get(dataset, {}))
        if self.profile:
            chosen = self.profiles[self.profile]
            merged.update(chosen.common)
            merged.update(chosen.datasets.get(dataset, {}))
            merged.update(chosen.models.get(model, {}))
            merged.update(chosen.per_dataset.get(model, {}).get(dataset, {}))
        merged.update(variant.settings)
        if DATA_PATH_KEY in merged:
            path = Path(str(merged[DATA_PATH_KEY])).expanduser()
            if not path.is_absolute():
                path = (data_root or default_data_root()) / path
            # RecBole joins data_path and the data set name by string concatenation.
            merged[DATA_PATH_KEY] = str(path.resolve()) + "/"
        return merged

    def runs(
        self,
        seeds: Sequence[int] | None = None,
        models: Sequence[str] | None = None,
        data_root: Path | None = None,
    ) -> list[RunSpec]:
        """Every model x data set x seed, data set by data set and seed by seed.

        Raises
        ------
        SuiteError
            If ``models`` names a model the suite does not have.
        """
        chosen = list(self.models) if models is None else list(models)
        unknown = [m for m in chosen if m not in self.models]
        if unknown:
            raise SuiteError(
                f"{self.source}: models: no model {', '.join(unknown)} "
                f"(the suite has {', '.join(self.models)})"
            )
        variants = self.variants or {m: Variant(m, {}) for m in self.models}
        labels = [label for label, v in variants.items() if v.model in chosen]
        return [
            RunSpec(
                label,
                dataset,
                seed,
                self.overrides(label, dataset, data_root),
                self.profile,
                # the model to run: its class path, or its name when the label is a variant's
                self.model_classes.get(variants[label].model)
                or (variants[label].model if label != variants[label].model else None),
                self.threads_of(variants[label].model),
            )
            for dataset in self.datasets
            for seed in (self.seeds if seeds is None else seeds)
            for label in labels
        ]


def default_data_root() -> Path:
    """The repository root when running from a checkout, else the current directory."""
    return REPO_ROOT if (REPO_ROOT / "properties" / "benchmark").is_dir() else Path.cwd()


def format_value(value: Any) -> str:
    """Write an override value so that RecBole's command-line parser reads it back unchanged.

    RecBole ``eval``s a command-line value and keeps the raw string when that fails, so plain words
    and paths are written as they are and everything else as a Python literal (``repr``).
    """
    plain = isinstance(value, str) and _PLAIN_STRING_RE.fullmatch(value)
    return value if plain and value.lower() not in _LITERAL_WORDS else repr(value)


def suite_dirs() -> list[Path]:
    """Folders searched for suite names: the installed package's, then the repository's."""
    dirs = []
    try:
        installed = Path(str(resources.files(_PACKAGE_PROPERTIES).joinpath("benchmark")))
        dirs.append(installed)
    except (ModuleNotFoundError, AttributeError, TypeError, ValueError):
        pass  # running from a source checkout that is not installed
    dirs.append(REPO_ROOT / "properties" / "benchmark")
    return [d for i, d in enumerate(dirs) if d.is_dir() and d not in dirs[:i]]


def available_suites() -> list[str]:
    return sorted({p.stem for d in suite_dirs() for p in d.iterdir() if p.suffix in SUITE_SUFFIXES})


def find_suite(name_or_path: str) -> Path:
    """Path of a suite given by name (``quick``) or by a path to a yaml file.

    Raises
    ------
    SuiteError
        If there is no such file.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in SUITE_SUFFIXES or len(candidate.parts) > 1 or candidate.is_file():
        if not candidate.is_file():
            raise SuiteError(f"{candidate}: no such suite file")
        return candidate
    for folder in suite_dirs():
        for suffix in SUITE_SUFFIXES:
            if (folder / f"{name_or_path}{suffix}").is_file():
                return folder / f"{name_or_path}{suffix}"
    raise SuiteError(
        f"{name_or_path}: no such suite (available: {', '.join(available_suites()) or 'none'}; "
        f"searched {', '.join(str(d) for d in suite_dirs())})"
    )


def load_suite(name_or_path: str | Path) -> Suite:
    """Find, parse and validate a suite.

    Raises
    ------
    SuiteError
        On bad yaml, an unknown or missing key, or a value of the wrong type; the message names the
        file and the key.
    """
    path = find_suite(str(name_or_path))
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SuiteLoader)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid yaml: {' '.join(str(exc).split())}") from exc
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read: {exc}") from exc
    return _validate(path, raw)


def _validate(path: Path, raw: Any) -> Suite:
    def fail(key: str, message: str) -> SuiteError:
        return SuiteError(f"{path}: {key}: {message}")

    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: the suite must be a mapping of {', '.join(SUITE_KEYS)}")
    unknown = [str(k) for k in raw if k not in SUITE_KEYS]
    if unknown:
        raise fail(unknown[0], f"unknown key (allowed: {', '.join(SUITE_KEYS)})")
    if path.stem in RESERVED_SUITE_NAMES:
        raise SuiteError(f"{path}: the suite name {path.stem!r} is reserved")
    for required in ("datasets", "models"):
        if not raw.get(required):
            raise fail(required, "missing or empty: list at least one")

    description = raw.get("description", "") or ""
    if not isinstance(description, str):
        raise fail("description", "must be a string")
    timeout_s = _timeout(fail, "timeout_s", raw.get("timeout_s", DEFAULT_TIMEOUT_S))
    seeds = raw.get("seeds", list(DEFAULT_SEEDS))
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise fail("seeds", f"must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise fail("seeds", f"repeated seed in {seeds!r}")
    notes = _notes(fail, "notes", raw.get("notes"))

    common = _overrides(fail, "common", raw.get("common"))
    datasets = _named(fail, "datasets", raw["datasets"], _DATASET_RE)
    datasets = {name: _overrides(fail, f"datasets.{name}", v) for name, v in datasets.items()}
    models: dict[str, dict[str, Any]] = {}
    per_dataset: dict[str, dict[str, dict[str, Any]]] = {}
    model_classes: dict[str, str] = {}
    model_keys: dict[str, tuple[str, ...]] = {}
    threads: dict[str, int] = {}
    for name, value in _named(fail, "models", raw["models"], _MODEL_RE).items():
        entry = _model_entry(fail, f"models.{name}", value, datasets, allow_class=True)
        models[name], per_dataset[name], model_keys[name] = (
            entry.overrides, entry.per_dataset, entry.config_keys
        )
        if entry.class_path is not None:
            model_classes[name] = entry.class_path
        if entry.threads is not None:
            threads[name] = entry.threads
    per_dataset = {m: block for m, block in per_dataset.items() if block}
    for key in COMPARISON_KEYS:
        if key in raw and (not isinstance(raw[key], str) or raw[key] not in models):
            raise fail(key, f"{raw[key]!r} is not a model of this suite ({', '.join(models)})")
    if "reference" in raw and raw.get("reference") == raw.get("candidate"):
        raise fail("candidate", "must differ from reference")
    profiles = _profiles(fail, raw.get("profiles"), datasets, models, model_keys)
    anchors = _anchors(fail, raw.get("anchors"), datasets, models)
    search = parse_search(fail, raw.get("search"), models)
    return Suite(
        name=path.stem,
        source=path,
        description=description.strip(),
        timeout_s=timeout_s,
        seeds=tuple(int(s) for s in seeds),
        common=common,
        datasets=datasets,
        models=models,
        per_dataset=per_dataset,
        notes=notes,
        reference=raw.get("reference"),
        candidate=raw.get("candidate"),
        profiles=profiles,
        model_classes=model_classes,
        anchors=anchors,
        search=search,
        threads=threads,
    )


def _anchors(fail: Any, value: Any, datasets: Mapping, models: Mapping) -> dict:
    """``anchors``: data set of the suite -> model of the suite -> a non-empty string."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("anchors", "must be a mapping of data set -> {model: published numbers}")
    checked = {}
    for dataset, block in value.items():
        if dataset not in datasets:
            raise fail(f"anchors.{dataset}",
                       f"not a data set of this suite ({', '.join(datasets)})")
        if not isinstance(block, dict):
            raise fail(f"anchors.{dataset}", "must be a mapping of model -> published numbers")
        for model, text in block.items():
            if model not in models:
                raise fail(f"anchors.{dataset}.{model}",
                           f"not a model of this suite ({', '.join(models)})")
            if not isinstance(text, str) or not text.strip():
                raise fail(f"anchors.{dataset}.{model}", "must be a non-empty string")
        checked[dataset] = {m: t.strip() for m, t in block.items()}
    return checked


def _timeout(fail: Any, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise fail(where, f"must be a positive number of seconds, got {value!r}")
    return float(value)


def _notes(fail: Any, where: str, value: Any) -> tuple[str, ...]:
    notes = value or []
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise fail(where, "must be a list of strings")
    return tuple(n.strip() for n in notes)


@dataclass(frozen=True)
class _ModelEntry:
    """A parsed ``models.<name>`` entry."""

    overrides: dict[str, Any]
    per_dataset: dict[str, dict[str, Any]]
    class_path: str | None  # ``class``: import path of a user's model
    config_keys: tuple[str, ...]  # the keys that class declares (``CONFIG_KEYS``)
    threads: int | None = None  # ``threads``: the runs' OpenMP/MKL threads


def _model_entry(
    fail: Any,
    where: str,
    value: Any,
    datasets: Mapping[str, Any],
    allow_class: bool,
    extra_keys: Sequence[str] = (),
) -> _ModelEntry:
    """A ``models.<name>`` entry (``extra_keys``: config keys its class declares)."""
    extra_keys = tuple(extra_keys)
    value = dict(value or {}) if isinstance(value, dict) or value is None else value
    block: dict[str, dict[str, Any]] = {}
    class_path = None
    if isinstance(value, dict) and CLASS_KEY in value:
        if not allow_class:
            raise fail(f"{where}.{CLASS_KEY}", "a profile cannot change a model's class")
        class_path, extra_keys = _model_class(fail, f"{where}.{CLASS_KEY}", value.pop(CLASS_KEY))
    threads = None
    if isinstance(value, dict) and THREADS_KEY in value:
        threads = value.pop(THREADS_KEY)
        if not _is_int(threads) or threads < 1:
            raise fail(f"{where}.{THREADS_KEY}",
                       f"must be a whole number of threads >= 1, got {threads!r}")
    if isinstance(value, dict) and PER_DATASET_KEY in value:
        named = _named(fail, f"{where}.{PER_DATASET_KEY}", value.pop(PER_DATASET_KEY))
        for dataset, sub in named.items():
            key = f"{where}.{PER_DATASET_KEY}.{dataset}"
            if dataset not in datasets:
                raise fail(key, f"not a data set of this suite ({', '.join(datasets)})")
            block[dataset] = _overrides(fail, key, sub, extra_keys)
    return _ModelEntry(
        _overrides(fail, where, value, extra_keys), block, class_path, extra_keys, threads
    )


def _model_class(fail: Any, where: str, value: Any) -> tuple[str, tuple[str, ...]]:
    """Check that ``value`` (``package.module:Class``) imports and is a RecBole model; the import
    path and the names of the class's ``CONFIG_KEYS``."""
    if not isinstance(value, str) or not _CLASS_PATH_RE.fullmatch(value):
        raise fail(where, f"must be an import path 'package.module:Class', got {value!r}")
    from recbole_sasrec_ext.contract.model import declarations
    from recbole_sasrec_ext.models.registry import import_model_class  # imports torch and RecBole

    try:
        model_class = import_model_class(value)
    except PluginError as exc:
        raise fail(where, str(exc)) from None
    return value, tuple(key.name for key in declarations(model_class).config_keys)


def _profiles(
    fail: Any,
    raw: Any,
    datasets: Mapping[str, Any],
    models: Mapping[str, Any],
    model_keys: Mapping[str, Sequence[str]],
) -> dict[str, Profile]:
    if raw is None:
        return {}
    profiles = {}
    for name, value in _named(fail, "profiles", raw, _DATASET_RE).items():
        where = f"profiles.{name}"
        if not isinstance(value, dict):
            raise fail(where, f"must be a mapping of {', '.join(PROFILE_KEYS)}")
        unknown = [str(k) for k in value if k not in PROFILE_KEYS]
        if unknown:
            raise fail(f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(PROFILE_KEYS)})")
        layers = {}
        for key, known in (("datasets", datasets), ("models", models)):
            block = _named(fail, f"{where}.{key}", value.get(key) or {}, _MODEL_RE)
            for entry in block:
                if entry not in known:
                    raise fail(f"{where}.{key}.{entry}", f"not one of the suite's {key} "
                               f"({', '.join(known)})")
            layers[key] = block
        model_layers = {
            m: _model_entry(
                fail, f"{where}.models.{m}", v, datasets, allow_class=False,
                extra_keys=model_keys.get(m, ()),
            )
            for m, v in layers["models"].items()
        }
        timeout = value.get("timeout_s")
        profiles[name] = Profile(
            name=name,
            timeout_s=None if timeout is None else _timeout(fail, f"{where}.timeout_s", timeout),
            notes=_notes(fail, f"{where}.notes", value.get("notes")),
            common=_overrides(fail, f"{where}.common", value.get("common")),
            datasets={
                d: _overrides(fail, f"{where}.datasets.{d}", v)
                for d, v in layers["datasets"].items()
            },
            models={m: entry.overrides for m, entry in model_layers.items()},
            per_dataset={m: e.per_dataset for m, e in model_layers.items() if e.per_dataset},
            threads={m: e.threads for m, e in model_layers.items() if e.threads is not None},
        )
    return profiles


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _named(fail: Any, where: str, value: Any, name_re: re.Pattern[str] = _DATASET_RE) -> dict:
    if not isinstance(value, dict):
        raise fail(where, f"must be a mapping of name to overrides, got {type(value).__name__}")
    for name in value:
        if not isinstance(name, str) or not name_re.fullmatch(name):
            raise fail(f"{where}.{name}", f"not a valid name (must match {name_re.pattern})")
    return value


def _overrides(fail: Any, where: str, value: Any, extra_keys: Sequence[str] = ()) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(where, f"must be a mapping of config key to value, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise fail(f"{where}.{key}", "not a valid config key")
        if key in RESERVED_OVERRIDES or key == PER_DATASET_KEY:
            raise fail(
                f"{where}.{key}", "is set by the benchmark itself (use seeds / models / datasets)"
            )
        _check_value(fail, f"{where}.{key}", item)
        if key == NPROC_KEY and (not _is_int(item) or item < 1):
            raise fail(f"{where}.{key}", f"must be a whole number of processes >= 1, got {item!r}")
        if "=" in format_value(item):
            raise fail(f"{where}.{key}", "contains '=', which RecBole's command line cannot carry")
    try:  # like the command line: unknown keys (did you mean ...?), types and ranges
        check_overrides(value, extra_keys=extra_keys)
    except PluginError as exc:
        raise fail(where, str(exc)) from None
    return dict(value)


def _check_value(fail: Any, where: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise fail(where, f"mapping key {key!r} must be a string or integer")
            _check_value(fail, f"{where}.{key}", item)
    elif isinstance(value, list):
        for item in value:
            _check_value(fail, where, item)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise fail(where, f"unsupported value {value!r} ({type(value).__name__}); quote it")


def plan_summary(runs: Iterable[RunSpec]) -> str:
    runs = list(runs)
    models = dict.fromkeys(r.model for r in runs)
    datasets = dict.fromkeys(r.dataset for r in runs)
    seeds = dict.fromkeys(r.seed for r in runs)
    return (
        f"{len(runs)} runs: {len(models)} models x {len(datasets)} data sets x {len(seeds)} seeds"
    )
