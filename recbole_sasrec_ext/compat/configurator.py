"""``recbole.config.configurator``: RecBole's own ``Config`` resolves a plugin model the way the
plugin's ``Config`` does.

RecBole's ``Config`` reads none of the plugin's yamls. For a model class that satisfies
:class:`~recbole_sasrec_ext.contract.model.PluginModel`, its ``_get_final_config_dict`` also sets,
for keys the user did not set: the model's defaults (its yaml chain, the data set's values, the
full-ranking recipe: :func:`~recbole_sasrec_ext.models.defaults.apply_defaults`), no RecBole-side
training negatives when the model needs none, and the reading encoding. The config is then final
when it is built, on either route, and both routes give the same
:class:`~recbole_sasrec_ext.contract.plan.RunPlan` (tests/test_recbole_pipeline.py). Other models
are not touched.
"""

from __future__ import annotations

from logging import getLogger

from recbole_sasrec_ext.compat.patching import MARK, replace_attr
from recbole_sasrec_ext.contract.model import PluginModel, declarations
from recbole_sasrec_ext.data.atomic import reading_encoding
from recbole_sasrec_ext.models.defaults import (
    apply_defaults,
    recipe_note,
    settle_training_negatives,
)


def settle_plugin_model(
    final: dict, user: dict, model_class: type, dataset: str, sequential: bool
) -> list[str]:
    """Set a plugin model's settings in ``final`` (a resolving config's settings); returns the
    run's notes."""
    changed = apply_defaults(final, user, model_class.__name__, dataset)
    settle_training_negatives(
        final, user, sequential, declarations(model_class).needs_training_negatives
    )
    final["encoding"] = reading_encoding(final.get("encoding"))
    return recipe_note(changed)


def _resolving_plugin_models(original):
    def _get_final_config_dict(self):
        """RecBole's ``Config._get_final_config_dict``; for a plugin model, its settings
        (:func:`settle_plugin_model`) too."""
        from recbole.utils import ModelType

        final = original(self)
        if isinstance(self.model_class, PluginModel):
            sequential = final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            self.notes = settle_plugin_model(
                final, self.external_config_dict, self.model_class, self.dataset, sequential
            )
            for note in self.notes:
                getLogger().info(f"{self.model_class.__name__}: {note}")
        return final

    return _get_final_config_dict


def patch_configurator(module) -> None:
    """Install :func:`settle_plugin_model` into RecBole's ``Config`` (idempotent)."""
    original = module.Config.__dict__["_get_final_config_dict"]
    if getattr(original, MARK, None) is None:
        replace_attr(
            module.Config, "_get_final_config_dict", _resolving_plugin_models(original),
            "plugin_model_settings",
        )
