"""Validation of a run's inputs before anything is written: names, config keys (unknown keys
with a did-you-mean, types and ranges, cross-key rules) and the output folders.

Every failure is a :class:`PluginError` whose message is one line naming the key or file.
The known keys are read from RecBole's and the plugin's ``properties/`` yaml files and from the
``config["..."]`` look-ups in both code bases, so a key RecBole reads is never rejected.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.paths import DATASET_NAME, properties_dir
from recbole_sasrec_ext.contract.keys import N_HEADS_DIVIDES_HIDDEN, Key, check_keys
from recbole_sasrec_ext.contract.model import declarations
from recbole_sasrec_ext.contract.plan import is_mode

#: The plugin's package folder (this file is in its ``config/``).
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: Sub-keys RecBole reads from ``eval_args``.
EVAL_ARGS_KEYS = ("split", "group_by", "order", "mode")
#: Keys RecBole sets itself or reads outside ``config[...]`` look-ups.
_EXTRA_KEYS = (
    "model",
    "dataset",
    "config_files",
    "MODEL_TYPE",
    "MODEL_INPUT_TYPE",
    "eval_type",
    "device",
    "single_spec",
    "local_rank",
    "world_size",
    "offset",
    "nproc",
    "ip",
    "port",
    "implementation",
    "train_neg_sample_args",
    "valid_neg_sample_args",
    "test_neg_sample_args",
    "eval_neg_sample_args",
)
#: Type and range of core keys RecBole reads without checking.
CORE_KEYS: tuple[Key, ...] = (
    Key("weight_decay", float, low=0.0),
    Key("worker", int, low=0),
    Key("train_batch_size", int, low=1),
    Key("eval_batch_size", int, low=1),
    Key("show_progress", bool),
    Key("reproducibility", bool),
    Key("shuffle", bool),
    Key("checkpoint_dir", str),
    Key("field_separator", str),
    Key("encoding", str, optional=True),
)
#: ``config["key"]``, ``config_dict["key"]``, ``config.get("key"``, ``config_dict.get("key"``.
_CONFIG_LOOKUP = re.compile(
    r"""config(?:_dict)?(?:\[\s*|\.get\(\s*)["']([A-Za-z_][A-Za-z0-9_]*)["']"""
)


def check_dataset_name(name: Any) -> None:
    """Raise unless ``name`` is a safe data set name (it becomes part of file paths)."""
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name) or ".." in name:
        raise PluginError(
            f"data set name {name!r} is not allowed: expected letters, digits, '.', '_' or '-' "
            f"(pattern {DATASET_NAME.pattern}, no '..'); use --data_path for the folder"
        )


def _yaml_keys(folder: Path) -> set[str]:
    keys: set[str] = set()
    for file in sorted(folder.rglob("*.yaml")):
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            keys.update(str(k) for k in data)
    return keys


def _code_keys(folder: Path) -> set[str]:
    keys: set[str] = set()
    for file in folder.rglob("*.py"):
        keys.update(_CONFIG_LOOKUP.findall(file.read_text(encoding="utf-8", errors="replace")))
    return keys


@lru_cache(maxsize=1)
def recbole_keys() -> frozenset[str]:
    """Every key in RecBole's ``properties/`` yaml files or read by its code as ``config[...]``."""
    import recbole  # the package's __init__ only (no torch)

    root = Path(recbole.__file__).resolve().parent
    return frozenset(_yaml_keys(root / "properties") | _code_keys(root) | set(_EXTRA_KEYS))


@lru_cache(maxsize=1)
def plugin_keys() -> frozenset[str]:
    """Every key in the plugin's ``properties/`` yaml files (each model yaml documents its
    ``CONFIG_KEYS``) or read by the plugin's code as ``config[...]``."""
    folder = properties_dir()
    keys = _yaml_keys(folder / "model") | _yaml_keys(folder / "dataset")
    if (folder / "overall.yaml").is_file():
        data = yaml.safe_load((folder / "overall.yaml").read_text(encoding="utf-8"))
        keys |= set(data or {})
    return frozenset(keys | _code_keys(_PACKAGE_DIR))


def _model_yaml_keys(folder: Path) -> dict[str, set[str]]:
    """Model name -> keys of its yaml in ``folder`` (with the keys of the yamls it ``extends``);
    yamls only extended (no model of that name) are left out by the caller."""
    raw = {}
    for file in sorted(folder.glob("*.yaml")):
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        raw[file.stem] = data if isinstance(data, dict) else {}
    keys = {}
    for name, data in raw.items():
        found, parent, seen = set(data), data.get("extends"), {name}
        while isinstance(parent, str) and parent.removesuffix(".yaml") in raw:
            parent = parent.removesuffix(".yaml")
            if parent in seen:
                break
            seen.add(parent)
            found |= set(raw[parent])
            parent = raw[parent].get("extends")
        keys[name] = found - {"extends"}
    return keys


@lru_cache(maxsize=1)
def model_owned_keys() -> dict[str, tuple[str, ...]]:
    """Keys that belong to particular models -> those models: keys of RecBole's and the
    plugin's model yamls that no general source (the overall and data set yamls, the code outside
    the models) has."""
    import recbole

    root = Path(recbole.__file__).resolve().parent
    plugin = _PACKAGE_DIR
    general = set(_yaml_keys(root / "properties" / "dataset")) | set(
        _yaml_keys(properties_dir() / "dataset")
    )
    for overall in (root / "properties" / "overall.yaml", properties_dir() / "overall.yaml"):
        data = yaml.safe_load(overall.read_text(encoding="utf-8")) if overall.is_file() else {}
        general |= set(data or {})
    for folder, skip in ((root, ("model",)), (plugin, ("models", "layers"))):
        for file in folder.rglob("*.py"):
            if file.relative_to(folder).parts[0] not in skip:
                general |= set(_CONFIG_LOOKUP.findall(file.read_text(encoding="utf-8",
                                                                      errors="replace")))
    general |= set(_EXTRA_KEYS)
    owners: dict[str, list[str]] = {}
    models = {**_model_yaml_keys(root / "properties" / "model")}
    for name, keys in _model_yaml_keys(properties_dir() / "model").items():
        if name != "transformer":  # only extended (SASRec, RKSA)
            models[name] = models.get(name, set()) | keys
    for name, keys in sorted(models.items()):
        for key in keys - general:
            owners.setdefault(key, []).append(name)
    return {key: tuple(names) for key, names in owners.items()}


#: Whether keys of other models are an error (the command-line tools: one run, one model);
#: library calls may pass shared settings (e.g. one config dict for several models).
_STRICT_MODEL_KEYS: ContextVar[bool] = ContextVar("strict_model_keys", default=False)


@contextmanager
def strict_model_keys() -> Iterator[None]:
    """Inside the block a key that belongs to other models only is an error
    (:func:`check_model_keys`)."""
    token = _STRICT_MODEL_KEYS.set(True)
    try:
        yield
    finally:
        _STRICT_MODEL_KEYS.reset(token)


def check_model_keys(given: Iterable[str], model: str, own: Iterable[str]) -> None:
    """Raise on the first key of ``given`` that belongs to other models only (``own``: every key
    this run's model reads: its yamls' keys and its ``CONFIG_KEYS``)."""
    owners, own = model_owned_keys(), set(own)
    for key in given:
        if key in owners and key not in own:
            names = owners[key]
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            raise PluginError(
                f"config key '{key}' is not a key of model {model}: it belongs to {shown} "
                f"(it would have no effect; remove it)"
            )


def known_keys(extra: Iterable[str] = ()) -> frozenset[str]:
    """RecBole's keys, the plugin's keys and ``extra`` (the data set's fields)."""
    return recbole_keys() | plugin_keys() | frozenset(extra)


def check_known_keys(
    given: Iterable[str], known: Iterable[str], prefix: str = "", where: str = ""
) -> None:
    """Raise on the first key of ``given`` not in ``known``, naming the closest known key
    (``prefix`` is put before the key names, ``where`` after the message, e.g. a file name)."""
    known = set(known)
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = (
                f": did you mean '{prefix}{close[0]}'?"
                if close
                else " (see properties/overall.yaml)"
            )
            raise PluginError(f"unknown config key '{prefix}{key}'{where}{hint}")


def _check_finite(key: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise PluginError(
            f"config key '{key}' = {value!r} is not allowed: expected a finite number"
        )
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(f"{key}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(key, v)


def _bad(key: str, value: Any, expected: str) -> PluginError:
    return PluginError(f"config key '{key}' = {value!r} is not allowed: expected {expected}")


def check_metrics(config: Mapping[str, Any]) -> None:
    """``metrics`` known to RecBole, ``topk`` positive ints, ``valid_metric`` among the results."""
    from recbole.evaluator.register import metric_information

    metrics, topk, valid = config.get("metrics"), config.get("topk"), config.get("valid_metric")
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise _bad("metrics", metrics, "a non-empty list of metric names")
    for metric in metrics:
        if metric.lower() not in metric_information:
            close = difflib.get_close_matches(metric.lower(), list(metric_information), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise _bad("metrics", metrics, f"RecBole metric names{hint}")
    ks = [topk] if isinstance(topk, int) and not isinstance(topk, bool) else topk
    if (
        not isinstance(ks, list)
        or not ks
        or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks)
    ):
        raise _bad("topk", topk, "an int >= 1 or a non-empty list of ints >= 1")
    results = set()
    for metric in metrics:
        need = metric_information[metric.lower()]
        if "rec.items" in need or "rec.topk" in need:
            results.update(f"{metric.lower()}@{k}" for k in ks)
        else:
            results.add(metric.lower())
    if not isinstance(valid, str) or valid.lower() not in results:
        raise _bad(
            "valid_metric", valid, "one of " + ", ".join(sorted(results)) + " (metrics@topk)"
        )


def check_eval_args(eval_args: Any) -> None:
    if eval_args is None:
        return
    if not isinstance(eval_args, dict):
        raise _bad("eval_args", eval_args, "a mapping with keys " + ", ".join(EVAL_ARGS_KEYS))
    check_known_keys(eval_args, EVAL_ARGS_KEYS, prefix="eval_args.")
    mode = eval_args.get("mode")
    modes = mode.values() if isinstance(mode, dict) else [mode]
    for m in modes:
        if not is_mode(m):
            raise _bad("eval_args.mode", mode, "'full', 'labeled', 'uniN' or 'popN' (N >= 1)")


def check_gpu(given: Mapping[str, Any], from_file_only: bool = False) -> None:
    """``use_gpu: True`` given by the user on a machine without CUDA is an error (RecBole would
    train on the CPU without a word); set only in a config file (which may spell out RecBole's
    defaults) it is a warning that says the run trains on the CPU."""
    if given.get("use_gpu") is True:
        import torch

        if torch.cuda.is_available():
            return
        if from_file_only:
            warnings.warn(
                "use_gpu: True (config file) but no CUDA device is available on this machine: "
                "the run trains on the CPU", stacklevel=2,
            )
            return
        raise PluginError(
            "config key 'use_gpu' = True is not allowed: no CUDA device is available on this "
            "machine (set --use_gpu=False to train on the CPU)"
        )


def check_model_constraints(config: Mapping[str, Any]) -> None:
    """Cross-key rules that hold for every transformer model, RecBole's included (the plugin's
    models declare the same rule in ``CONFIG_RULES``)."""
    heads, hidden = config.get("n_heads"), config.get("hidden_size")
    if isinstance(heads, int) and isinstance(hidden, int) and heads >= 1:
        N_HEADS_DIVIDES_HIDDEN.check(config)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _what(key: str) -> str:
    """``config key 'k'``, or the option itself (``--out``)."""
    return key if key.startswith("--") else f"config key '{key}'"


def check_output_dir(key: str, folder: Any) -> None:
    """``folder`` is a folder (or can be created) and is writable (``key``: a config key, or a
    command-line option such as ``--out``)."""
    path = Path(str(folder))
    if path.exists() and not path.is_dir():
        raise PluginError(
            f"{_what(key)} = {str(folder)!r} is not allowed: it is a file, not a folder"
        )
    base = _nearest_existing(path)
    if not base.is_dir():
        raise PluginError(f"{_what(key)} = {str(folder)!r} is not allowed: {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise PluginError(
            f"{_what(key)} = {str(folder)!r} is not allowed: {base} is not writable"
        )


def check_output_file(key: str, file: Any) -> None:
    """``file`` can be written: not a folder, and its folder is one (or can be created) and is
    writable."""
    path = Path(str(file))
    if path.is_dir():
        raise PluginError(
            f"{_what(key)} = {str(file)!r} is not allowed: it is a folder, not a file"
        )
    base = _nearest_existing(path.parent)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise PluginError(
            f"{_what(key)} = {str(file)!r} is not allowed: {base} is not a writable folder"
        )


def check_overrides(
    overrides: Mapping[str, Any], where: str = "", extra_keys: Iterable[str] = ()
) -> None:
    """The checks that need no built config (suite files): known keys (``extra_keys`` too: a
    user's model's ``CONFIG_KEYS``), finite numbers and the types and ranges of the core keys."""
    from recbole_sasrec_ext.contract.keys import COMMON_KEYS

    check_known_keys(overrides, known_keys(extra_keys), where=where)
    for key, value in overrides.items():
        _check_finite(key, value)
    check_keys(overrides, COMMON_KEYS + CORE_KEYS)


def validate_config(config, fields: Iterable[str] = ()) -> None:
    """All checks of a built ``Config`` (``config.external_config_dict`` holds the user's keys,
    ``config.final_config_dict`` the merged values); ``fields`` are the data set's field names."""
    given = config.external_config_dict
    final = config.final_config_dict
    model_class = getattr(config, "model_class", None)  # a user's model declares its own keys
    declared = () if model_class is None else declarations(model_class).config_keys
    model_keys = [key.name for key in declared]
    check_known_keys(given, known_keys([*fields, *model_keys]))
    if _STRICT_MODEL_KEYS.get():
        own = [*getattr(config, "internal_config_dict", {}), *model_keys]
        check_model_keys(given, str(getattr(config, "model", "")), own)
    for key, value in given.items():
        _check_finite(key, value)
    check_keys(final, CORE_KEYS)
    not_files = {**(getattr(config, "variable_config_dict", None) or {}),
                 **(getattr(config, "cmd_config_dict", None) or {})}
    check_gpu(given, from_file_only="use_gpu" not in not_files)
    check_metrics(final)
    check_eval_args(final.get("eval_args"))
    check_model_constraints(final)
    check_output_dir("checkpoint_dir", final.get("checkpoint_dir", "saved"))
    if final.get("per_user_file"):
        check_output_file("per_user_file", final["per_user_file"])
    for folder in ("log", "log_tensorboard"):  # RecBole writes these in the working directory
        path = Path(folder)
        if path.exists() and not path.is_dir():
            raise PluginError(
                f"{path.absolute()} is a file: RecBole writes its {folder}/ folder there"
            )
    if not os.access(Path.cwd(), os.W_OK | os.X_OK):
        raise PluginError(f"the working directory {Path.cwd()} is not writable (log/ goes there)")
