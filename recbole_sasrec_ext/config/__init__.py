"""The run's configuration: the plugin's ``Config`` (:mod:`.plugin_config`) and the checks of the
user's input (:mod:`.validation`).

``Config`` and ``properties_dir`` are imported on first use, so ``config.validation`` stays light
(no torch, no RecBole).
"""

from importlib import import_module

_EXPORTS = {
    "Config": "recbole_sasrec_ext.config.plugin_config",
    "properties_dir": "recbole_sasrec_ext.common.paths",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'recbole_sasrec_ext.config' has no attribute {name!r}")
