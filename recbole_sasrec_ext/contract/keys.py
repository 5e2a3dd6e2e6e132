"""Declarative checks for configuration keys: each model lists its keys (``CONFIG_KEYS``) and the
rules between them (``CONFIG_RULES``), ``Config`` checks them once, and a bad value is a
:class:`PluginError` (exit code 2) that names the key and the allowed values.

Every key a model declares is documented, with its range, in its ``properties/model/*.yaml``
(``tests/test_config_docs.py`` checks both ways)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from recbole_sasrec_ext.common.errors import PluginError


@dataclass(frozen=True)
class Key:
    """One configuration key and its allowed values.

    ``kind`` is ``int``, ``float``, ``bool``, ``str`` or ``list`` (``length`` numbers); numbers
    (and the numbers of a list) may have bounds (``low``/``high``, inclusive unless
    ``low_open``/``high_open``), strings a set of ``choices``. ``optional`` keys may be ``None``.
    """

    name: str
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | tuple[bool, ...] | None = None
    optional: bool = False
    length: int | None = None

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "True or False"
        lo = "-inf" if self.low is None else repr(self.low)
        hi = "inf" if self.high is None else repr(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        if self.kind is list:
            text = f"a list of {self.length} numbers in {left}{lo}, {hi}{right}"
            return ("None or " if self.optional else "") + text
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
            return isinstance(value, bool) and (self.choices is None or value in self.choices)
        if self.kind is str:
            return isinstance(value, str) and (self.choices is None or value in self.choices)
        if self.kind is list:
            return (
                isinstance(value, (list, tuple))
                and (self.length is None or len(value) == self.length)
                and all(self._number_ok(v) for v in value)
            )
        return self._number_ok(value)

    def _number_ok(self, value: Any) -> bool:
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
    Key("adam_betas", list, low=0.0, high=1.0, high_open=True, length=2, optional=True),
    Key("device_train_loader", bool),
    Key("divergence_factor", float, low=1.0, low_open=True, optional=True),
    Key("lr_scaling", str, choices=("none", "sqrt", "linear")),
    Key("lr_base_batch_size", int, low=1),
    Key("warmup_epochs", float, low=0.0),
    Key("weight_ema_epochs", float, low=0.0),
    Key("lr_plateau_patience", int, low=0),
    Key("lr_plateau_factor", float, low=0.0, high=1.0, low_open=True, high_open=True),
    Key("torch_compile", bool),
    Key("filter_seen", bool),
    Key("length_buckets", int, low=0),
    Key("length_split", bool),
    Key("per_user_file", str, optional=True),
)


@dataclass(frozen=True)
class Divides:
    """Rule between two integer keys: ``divisor`` divides ``dividend`` (e.g. ``n_heads`` divides
    ``hidden_size``). Checked after each key passed its own :class:`Key` check."""

    divisor: str
    dividend: str

    def check(self, config: Mapping[str, Any]) -> None:
        if self.divisor not in config or self.dividend not in config:
            return
        divisor, dividend = config[self.divisor], config[self.dividend]
        if dividend % divisor:
            raise PluginError(
                f"config key '{self.divisor}' = {divisor!r} is not allowed: it must divide "
                f"'{self.dividend}' = {dividend!r}"
            )


@dataclass(frozen=True)
class AtMost:
    """Rule between two integer keys: ``key`` is at most ``bound`` (e.g. ``train_stride`` at most
    ``MAX_ITEM_LIST_LENGTH``). Checked after each key passed its own :class:`Key` check;
    ``meaning`` is appended to the message (e.g. what 0 means)."""

    key: str
    bound: str
    low: int = 0
    meaning: str = ""

    def check(self, config: Mapping[str, Any]) -> None:
        value, bound = config.get(self.key), config.get(self.bound)
        if not (isinstance(value, int) and isinstance(bound, int)) or value <= bound:
            return
        meaning = f" ({self.meaning})" if self.meaning else ""
        raise PluginError(
            f"config key '{self.key}' = {value} is not allowed: expected an int in "
            f"[{self.low}, {self.bound} = {bound}]{meaning}"
        )


@dataclass(frozen=True)
class Requires:
    """Rule between two keys: ``key`` set to true needs ``other`` = ``value`` (e.g.
    ``exclude_own_negatives`` needs ``negatives_per: sequence``); ``why`` ends the message."""

    key: str
    other: str
    value: Any
    why: str = ""
    unless: tuple[str, Any] | None = None  # (key, value): the rule does not apply then

    def check(self, config: Mapping[str, Any]) -> None:
        if not config.get(self.key) or config.get(self.other) == self.value:
            return
        if self.unless is not None and config.get(self.unless[0]) == self.unless[1]:
            return
        why = f" ({self.why})" if self.why else ""
        raise PluginError(
            f"config key '{self.key}' = {config[self.key]!r} needs '{self.other}' = "
            f"{self.value!r}, not {config.get(self.other)!r}{why}"
        )


@dataclass(frozen=True)
class Unavailable:
    """Rule of one model: ``key`` set to true is an error for it (e.g. ``length_split`` for RKSA,
    whose kernel loss is pooled over the whole batch); ``why`` ends the message."""

    key: str
    model: str
    why: str

    def check(self, config: Mapping[str, Any]) -> None:
        if config.get(self.key):
            raise PluginError(
                f"config key '{self.key}' = {config[self.key]!r} is not available for "
                f"{self.model} ({self.why})"
            )


#: A rule between keys (checked after each key passed its own :class:`Key` check).
Rule = Union[Divides, AtMost, Requires, Unavailable]

#: ``n_heads`` divides ``hidden_size`` (multi-head attention splits the hidden size).
N_HEADS_DIVIDES_HIDDEN = Divides("n_heads", "hidden_size")
#: a training row never scores more targets than its window holds.
TRAIN_STRIDE_AT_MOST_WINDOW = AtMost("train_stride", "MAX_ITEM_LIST_LENGTH", meaning="0 = off")
#: a sequence's own items can only be left out of negatives drawn for that sequence.
#: (CE has no sampled negatives: there it leaves the row's items out of the full softmax)
OWN_NEGATIVES_PER_SEQUENCE = Requires("exclude_own_negatives", "negatives_per", "sequence",
                                      why="a batch's negatives are shared by every user",
                                      unless=("loss_type", "CE"))


def check_keys(
    config: Mapping[str, Any], keys: Iterable[Key], rules: Iterable[Rule] = ()
) -> None:
    """Check every present key against its spec, then the rules between keys; raise
    :class:`PluginError` on the first bad one."""
    for key in keys:
        if key.name in config:
            key.check(config[key.name])
    for rule in rules:
        rule.check(config)
