"""The documented defaults of a plugin model, read from its yaml (the one source).

RecBole's own ``recbole.config.Config`` does not read a plugin's ``properties/model/<Model>.yaml``:
for ``Config(model=SASRec)`` (the plugin's class) it reads RecBole's ``SASRec.yaml`` and leaves the
plugin-only keys (``layer_norm``, ``scale_embedding``, ...) unset; for ``RKSA`` it reads nothing.
:func:`fill_missing` gives such keys their documented defaults at model construction.
"""

from __future__ import annotations

from functools import cache
from logging import getLogger

import yaml


@cache
def yaml_defaults(model_name: str) -> dict:
    """The keys of ``properties/model/<model_name>.yaml`` and of the yamls it ``extends`` ({} when
    there is no such file)."""
    from recbole_sasrec_ext.config import EXTENDS_KEY, model_yaml_chain, properties_dir  # lazy

    path = properties_dir() / "model" / f"{model_name}.yaml"
    defaults: dict = {}
    for file in model_yaml_chain(path):
        if file.is_file():
            with open(file, encoding="utf-8") as f:
                defaults.update(yaml.safe_load(f) or {})
    defaults.pop(EXTENDS_KEY, None)
    return defaults


def fill_missing(config, model_name: str) -> list[str]:
    """Set every key of the model's yaml that ``config`` lacks to its documented default (a key the
    config holds, even as None, is kept); return the keys filled (logged at INFO)."""
    filled = []
    for key, value in yaml_defaults(model_name).items():
        if key not in config.final_config_dict:
            config[key] = value
            filled.append(key)
    if filled:
        getLogger().info(
            f"{model_name}: documented defaults for keys the config left unset: {filled}"
        )
    return filled
