"""recbole_sasrec_ext: a RecBole 1.2.1 plugin with the paper's SASRec and RKSA.

Everything a RecBole pipeline needs is importable from here::

    from recbole_sasrec_ext import (Config, get_model, get_trainer, create_dataset,
                                    data_preparation, run)

Imports are lazy, so light entry points (the converters, the benchmark runner) start without
loading torch and RecBole. Importing the package applies the compatibility fixes
(:mod:`recbole_sasrec_ext.compat`) that make RecBole 1.2.1 itself run on today's stack: numpy's
old aliases at once, the others when the RecBole module they fix is loaded (numpy only is imported
here).
"""

from importlib import import_module

from recbole_sasrec_ext import compat as _compat

_compat.apply()

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "recbole_sasrec_ext.config.plugin_config",
    "PluginError": "recbole_sasrec_ext.common.errors",
    "available_models": "recbole_sasrec_ext.models.registry",
    "get_model": "recbole_sasrec_ext.models.registry",
    "get_trainer": "recbole_sasrec_ext.training.registry",
    "create_dataset": "recbole_sasrec_ext.data.preparation",
    "data_preparation": "recbole_sasrec_ext.data.preparation",
    "run": "recbole_sasrec_ext.apps.quick_start",
    "load_data_and_model": "recbole_sasrec_ext.apps.quick_start",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'recbole_sasrec_ext' has no attribute {name!r}")
