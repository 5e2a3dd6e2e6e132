"""The defaults of a plugin model, resolved the same way whichever ``Config`` built the run.

The layers, lowest first: the model's yaml chain (``properties/model/<Model>.yaml`` and what it
``extends``: the paper's settings), the plugin's ``properties/dataset/<dataset>.yaml`` (the paper's
per-data-set values), then — when the run's recipe is ``full_ranking`` — the full-ranking recipe
(``properties/model/recipe-full-ranking.yaml``, plus ``train_stride`` = half the window). The
user's keys (config files, config dict, command line) are never touched.

Both ``Config`` routes apply them with :func:`apply_defaults` while the config resolves: the
plugin's :class:`~recbole_sasrec_ext.config.plugin_config.Config`, and RecBole's own
``recbole.config.Config`` (which reads none of the plugin's yamls) through
:mod:`recbole_sasrec_ext.compat.configurator`; both routes train the same model with the same loss
and windows (tests/test_recbole_pipeline.py).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import yaml

from recbole_sasrec_ext.common.paths import properties_dir
from recbole_sasrec_ext.contract.plan import loss_type_name, phase_modes

#: Key of a model yaml naming the yaml (same folder) whose keys it inherits and may override.
EXTENDS_KEY = "extends"
#: The full-ranking recipe's file, in ``properties/model/``.
RECIPE_FILE = "recipe-full-ranking.yaml"
#: Under the full-ranking recipe, unless set: ``train_stride`` = ``MAX_ITEM_LIST_LENGTH`` // this.
FULL_RANKING_STRIDE_DIVISOR = 2
_UNSET = object()


class Recipe(str, enum.Enum):
    """Values of the ``recipe`` key."""

    AUTO = "auto"
    PAPER = "paper"
    FULL_RANKING = "full_ranking"


def model_yaml_chain(path: Path) -> list[Path]:
    """``path`` and the yamls it ``extends`` (transitively), the most general first.

    Raises
    ------
    PluginError
        If an ``extends`` names a missing file or the chain loops.
    """
    from recbole_sasrec_ext.common.errors import PluginError

    chain = [path]
    while path.is_file():
        parent = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(EXTENDS_KEY)
        if parent is None:
            break
        path = path.parent / str(parent)
        if path in chain or not path.is_file():
            problem = "loops" if path in chain else "names a missing file"
            raise PluginError(f"{chain[-1]}: '{EXTENDS_KEY}: {parent}' {problem}")
        chain.append(path)
    return chain[::-1]


def _read(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


@cache
def yaml_defaults(model_name: str) -> dict:
    """The keys of ``properties/model/<model_name>.yaml`` and of the yamls it ``extends`` ({} when
    there is no such file)."""
    defaults: dict = {}
    for file in model_yaml_chain(properties_dir() / "model" / f"{model_name}.yaml"):
        if file.is_file():
            defaults.update(_read(file))
    defaults.pop(EXTENDS_KEY, None)
    return defaults


@cache
def recipe_values(model_name: str) -> dict:
    """The full-ranking recipe of ``model_name`` (``properties/model/recipe-full-ranking.yaml``):
    its shared keys, then the mapping under the model's name, where the model needs another value
    (RKSA's attention cannot take the SASRec block's separate keys and values)."""
    recipe = _read(properties_dir() / "model" / RECIPE_FILE)
    own = recipe.get(model_name, {})
    shared = {k: v for k, v in recipe.items() if not isinstance(v, dict)}
    return {**shared, **own}


def resolved_recipe(recipe: str | None, eval_args) -> Recipe:
    """``recipe`` with ``auto`` decided: full ranking in every phase gives ``full_ranking``."""
    allowed = [r.value for r in Recipe]
    if recipe is not None and recipe not in allowed:
        from recbole_sasrec_ext.common.errors import PluginError

        raise PluginError(f"config key 'recipe' = {recipe!r} is not allowed: expected one of "
                          + ", ".join(repr(r) for r in allowed))
    chosen = Recipe(recipe or Recipe.AUTO.value)
    if chosen is Recipe.AUTO:
        full = {str(m) for m in phase_modes(eval_args).values()} == {"full"}
        return Recipe.FULL_RANKING if full else Recipe.PAPER
    return chosen


def model_defaults(model_name: str, dataset: str, settings: Mapping, user: Mapping) -> dict:
    """Every default the plugin gives model ``model_name`` on ``dataset``.

    Parameters
    ----------
    settings : the run's config (reads ``eval_args`` and ``MAX_ITEM_LIST_LENGTH``)
    user : the keys the user set (``recipe``, if set, is read; the caller never overrides them)

    Returns
    -------
    dict of key -> value; keys of the model yaml chain, the data set yaml and, under the
    full-ranking recipe, the recipe and ``train_stride``.
    """
    chain = yaml_defaults(model_name)
    if not chain:
        return {}
    values = dict(chain)
    dataset_yaml = properties_dir() / "dataset" / f"{dataset}.yaml"
    if dataset_yaml.is_file():  # the paper's per-data-set values of the model's keys
        values.update({k: v for k, v in _read(dataset_yaml).items() if k in chain})
    if "recipe" not in chain:  # a model without recipes (Pop)
        return values
    recipe = resolved_recipe(user.get("recipe", values.get("recipe")), settings.get("eval_args"))
    if recipe is Recipe.FULL_RANKING:
        values.update(recipe_values(model_name))
        max_len = settings.get("MAX_ITEM_LIST_LENGTH")
        if isinstance(max_len, int):
            values["train_stride"] = max(1, max_len // FULL_RANKING_STRIDE_DIVISOR)
    values.pop(EXTENDS_KEY, None)
    return values


def apply_defaults(final: dict, user: Mapping, model_name: str, dataset: str) -> dict:
    """Set in ``final`` (a config's settings while it resolves) every default of plugin model
    ``model_name`` on ``dataset`` that the user did not set (``user``: the keys the user gave)
    and that differs; return the keys changed and their values. Both ``Config`` routes call it
    while the config resolves (the plugin's ``Config``, and RecBole's through
    :mod:`recbole_sasrec_ext.compat.configurator`), so nothing writes the config afterwards."""
    defaults = model_defaults(model_name, dataset, final, user)
    changed = {k: v for k, v in defaults.items() if k not in user and final.get(k, _UNSET) != v}
    final.update(changed)
    return changed


def recipe_note(changed: Mapping) -> list[str]:
    """The run's note on the defaults :func:`apply_defaults` set (none when it set nothing)."""
    if not changed:
        return []
    listed = ", ".join(f"{k}={v}" for k, v in changed.items())
    return [
        f"full-ranking recipe: {listed} (evaluation ranks every item; set a key to "
        "override it, or recipe=paper for the SASRec paper's settings)"
    ]


def settle_training_negatives(
    final: dict, user: Mapping, sequential: bool, needs_negatives: bool | None
) -> None:
    """``train_neg_sample_args: ~`` for a sequential model whose training needs no RecBole-side
    negatives, unless the user set the key. ``needs_negatives`` is the model's declaration
    (:class:`~recbole_sasrec_ext.contract.model.PluginModel`); None (RecBole's models): decided by
    ``loss_type`` (the plugin's losses and CE draw their own or none)."""
    if needs_negatives is None:
        from recbole_sasrec_ext.layers.losses import LossType  # torch: only while a config resolves

        self_sampling = {t.value for t in LossType}  # the plugin's losses, CE among them
        needs_negatives = loss_type_name(final.get("loss_type")) not in self_sampling
    if sequential and not needs_negatives and "train_neg_sample_args" not in user:
        final["train_neg_sample_args"] = None
