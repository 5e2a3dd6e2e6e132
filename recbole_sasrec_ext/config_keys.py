"""Declarative checks for configuration keys: each model lists its keys, ``Config`` checks them
once, and a bad value is a :class:`PluginError` that names the key and the allowed values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from recbole_sasrec_ext.errors import PluginError


@dataclass(frozen=True)
class Key:
    """One configuration key and its allowed values.

    ``kind`` is ``int``, ``float``, ``bool`` or ``str``; numbers may have bounds (``low``/``high``,
    inclusive unless ``low_open``/``high_open``), strings a set of ``choices``. ``optional`` keys
    may be ``None``.
    """

    name: str
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "True or False"
        lo = "-inf" if self.low is None else repr(self.low)
        hi = "inf" if self.high is None else repr(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        text = f"{self.kind.__name__} in {left}{lo}, {hi}{right}"
        return text + (" or None" if self.optional else "")

    def check(self, value: Any) -> None:
        if value is None and self.optional:
            return
        if not self._ok(value):
            raise PluginError(
                f"config key '{self.name}' = {value!r} is not allowed: expected {self.allowed()}"
            )

    def _ok(self, value: Any) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str) and (self.choices is None or value in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


#: Keys every run of the plugin's pipeline relies on (RecBole's own keys, checked here because
#: RecBole accepts nonsense such as ``epochs: -1`` silently).
COMMON_KEYS: tuple[Key, ...] = (
    Key("epochs", int, low=0),
    Key("train_batch_size", int, low=1),
    Key("eval_batch_size", int, low=1),
    Key("learning_rate", float, low=0.0, low_open=True),
    Key("stopping_step", int, low=1),
    Key("eval_step", int, low=0),
    Key("MAX_ITEM_LIST_LENGTH", int, low=1),
    Key("seed", int, low=0),
    Key("eval_neg_seed", int, low=0),
    Key("filter_seen", bool),
)


def check_keys(config: Mapping[str, Any], keys: Iterable[Key]) -> None:
    """Check every present key against its spec; raise :class:`PluginError` on the first bad one."""
    for key in keys:
        if key.name in config:
            key.check(config[key.name])
