"""The batching settings the speed benchmarks compare (``--settings plain length_split=True
length_buckets=32``): ``plain`` or ``key=value[+key=value...]`` of the batching keys (and
``bf16``, the blocks' bfloat16 autocast, which changes how a batch is computed too)."""

from __future__ import annotations

import yaml

#: The reference setting: RecBole's random batches, nothing split or bucketed (set explicitly, so
#: a recipe that turns ``length_split`` on does not leak into the reference).
PLAIN = "plain"
#: The keys a setting may name, with their values in ``plain``.
PLAIN_KEYS = {"length_split": False, "length_buckets": 0}
#: Keys a setting may also name, given only where named: the plugin models' ``bf16`` (the blocks'
#: bfloat16 autocast; RecBole's models have no such key).
OPTIONAL_KEYS = ("bf16",)


def setting_keys(setting: str) -> dict:
    """``setting`` as config keys (values read as yaml), every batching key given.

    Raises
    ------
    ValueError
        One line naming the setting, for a part that is not ``key=value`` or a key that is not a
        batching key.
    """
    keys = dict(PLAIN_KEYS)
    if setting == PLAIN:
        return keys
    for item in setting.split("+"):
        key, sep, value = item.partition("=")
        if not sep or (key not in PLAIN_KEYS and key not in OPTIONAL_KEYS):
            raise ValueError(f"--settings: {setting!r}: expected 'plain' or key=value[+key=value] "
                             f"with keys from {', '.join([*PLAIN_KEYS, *OPTIONAL_KEYS])}")
        keys[key] = yaml.safe_load(value)
    return keys


def setting_args(setting: str) -> list[str]:
    """``setting`` as command-line arguments (``--key=value`` for every batching key)."""
    return [f"--{key}={value}" for key, value in setting_keys(setting).items()]
