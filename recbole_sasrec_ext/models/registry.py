"""Model look-up: the plugin's models first, then RecBole's (RecBole-GNN's convention).

The plugin ships its own ``SASRec`` and ``Pop``. Inside the plugin's pipeline the plugin's model
wins; RecBole's built-in stays reachable under the explicit name ``RecBole.<Name>`` (for example
``RecBole.SASRec``). :func:`implementation_name` says which class ran; logs and results print it.

The registry holds the classes themselves; what a model needs from the pipeline it declares as
class attributes (``DATASET_CLASS``, ``TARGETS_AT_EVERY_POSITION``, ``CONFIG_KEYS``), so nothing
asks a module name whether a model is the plugin's.
"""

from __future__ import annotations

import importlib
import inspect

from recbole.utils import get_model as recbole_get_model

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.models.pop import Pop
from recbole_sasrec_ext.models.rksa import RKSA
from recbole_sasrec_ext.models.sasrec import SASRec

#: Explicit prefix that selects RecBole's built-in model of the same name.
RECBOLE_PREFIX = "RecBole."

#: The plugin's models: name -> class.
PLUGIN_MODELS: dict[str, type] = {model.__name__: model for model in (SASRec, RKSA, Pop)}

_RECBOLE_MODEL_PACKAGES = (
    "recbole.model.general_recommender",
    "recbole.model.sequential_recommender",
    "recbole.model.context_aware_recommender",
    "recbole.model.knowledge_aware_recommender",
)


def recbole_model_names() -> list[str]:
    """Names of RecBole's built-in models (imports RecBole's model packages; only used for
    messages and listings)."""
    from recbole.model.abstract_recommender import AbstractRecommender

    names = set()
    for package in _RECBOLE_MODEL_PACKAGES:
        try:
            module = importlib.import_module(package)
        except ImportError:  # an optional dependency of some RecBole model is missing
            continue
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, AbstractRecommender):
                names.add(name)
    return sorted(names)


def available_models() -> list[str]:
    """Every name :func:`get_model` accepts: the plugin's models, ``RecBole.<Name>`` for the
    built-ins they shadow, and RecBole's other models."""
    recbole_names = recbole_model_names()
    shadowed = [RECBOLE_PREFIX + n for n in PLUGIN_MODELS if n in recbole_names]
    others = [n for n in recbole_names if n not in PLUGIN_MODELS]
    return list(PLUGIN_MODELS) + shadowed + others


def base_model_name(name: str) -> str:
    """``RecBole.SASRec`` -> ``SASRec``; other names unchanged."""
    return name[len(RECBOLE_PREFIX):] if name.startswith(RECBOLE_PREFIX) else name


def import_model_class(path: str) -> type:
    """The class named by an import path ``package.module:Class`` (a user's own model), checked to
    be a RecBole model.

    Raises
    ------
    PluginError
        If the module does not import, has no such class, or the class is not a RecBole model.
    """
    from recbole.model.abstract_recommender import AbstractRecommender

    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 -- any error of the user's module is reported
        raise PluginError(
            f"model '{path}': cannot import {module_name} ({type(exc).__name__}: {exc}); "
            "is its folder on PYTHONPATH?"
        ) from None
    model_class = getattr(module, class_name, None)
    if not (inspect.isclass(model_class) and issubclass(model_class, AbstractRecommender)):
        what = ("no such class" if model_class is None
                else "not a subclass of RecBole's AbstractRecommender")
        raise PluginError(f"model '{path}': {what} in {module_name}")
    return model_class


def get_model(name: str) -> type:
    """Resolve a model name to its class: the plugin's first, then RecBole's; an import path
    ``package.module:Class`` is imported (:func:`import_model_class`).

    Raises
    ------
    PluginError
        If no model has that name; the message lists the available ones.
    """
    if name in PLUGIN_MODELS:
        return PLUGIN_MODELS[name]
    if ":" in name:
        return import_model_class(name)
    try:
        return recbole_get_model(base_model_name(name))
    except (ValueError, ImportError, AttributeError):
        raise PluginError(
            f"unknown model '{name}'. Available models: {', '.join(available_models())}"
        ) from None


def is_plugin_model(model_class: type) -> bool:
    """Whether ``model_class`` is one of the plugin's models (not RecBole's of the same name)."""
    return model_class in PLUGIN_MODELS.values()


def implementation_name(model_class: type) -> str:
    """Fully qualified class name, e.g. ``recbole.model.sequential_recommender.sasrec.SASRec``."""
    return f"{model_class.__module__}.{model_class.__qualname__}"
