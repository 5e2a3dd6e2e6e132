"""The run's decisions, made once from the final config: :class:`RunPlan`.

Also the one place that reads RecBole's ``eval_args.mode`` (:func:`phase_modes`,
:data:`MODE_PATTERN`, :func:`uniform_sample_count`) and names an evaluation protocol
(:func:`protocol_label`, :func:`run_protocol`).

The plugin's ``Config`` builds its plan at the end of its construction (``config.plan``); for
RecBole's own ``Config`` :func:`plan_of` builds it on first use. Either way the config is final
by then: the plugin's model defaults, the reading encoding and the process's device and ranks are
set while the config resolves, and nothing writes it afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Evaluation phases, in order.
PHASES = ("valid", "test")
#: Evaluation modes RecBole 1.2.1 accepts: full ranking, labeled, N sampled negatives.
MODE_PATTERN = re.compile(r"full|labeled|(uni|pop)[1-9]\d*")
#: Protocol label of full ranking with each user's earlier items removed (``filter_seen``).
FULL_SEEN_REMOVED = "full, seen removed"
#: Attribute of a ``Config`` holding its plan.
PLAN_ATTRIBUTE = "plan"


def phase_modes(eval_args: Any) -> dict[str, Any]:
    """``{"valid": mode, "test": mode}`` of ``eval_args``, before or after RecBole normalises it
    (a mode, or a mode per phase; ``full`` when unset). Values are returned as given (checked by
    :func:`check_mode`)."""
    mode = (eval_args if isinstance(eval_args, Mapping) else {}).get("mode", "full")
    if isinstance(mode, Mapping):
        return {phase: mode.get(phase, "full") for phase in PHASES}
    return {phase: mode for phase in PHASES}


def is_mode(mode: Any) -> bool:
    """Whether ``mode`` is a mode RecBole accepts (:data:`MODE_PATTERN`)."""
    return isinstance(mode, str) and MODE_PATTERN.fullmatch(mode) is not None


def uniform_sample_count(mode: str) -> int | None:
    """N of ``uniN`` (N uniformly sampled negatives per target), else None."""
    return int(mode[3:]) if mode.startswith("uni") else None


def protocol_label(mode: str, filter_seen: bool) -> str:
    """``full``, ``full, seen removed``, ``uni100``, ... of one phase."""
    return FULL_SEEN_REMOVED if mode == "full" and filter_seen else str(mode)


def run_protocol(valid_label: str, test_label: str) -> str:
    """The run's protocol: the test phase's label, ``valid/test`` when the phases differ."""
    return test_label if valid_label == test_label else f"{valid_label}/{test_label}"


def is_leave_one_out(split: Any) -> bool:
    """Whether ``eval_args.split`` is the leave-one-out split (``{'LS': ...}``)."""
    return isinstance(split, Mapping) and list(split) == ["LS"]


def loss_type_name(value: Any) -> str | None:
    """``loss_type`` as every comparison reads it: upper-cased (RecBole's ``CE``, ``BPR``, the
    plugin's ``LossType`` values); None when unset."""
    return None if value is None else str(value).upper()


def effective_filter_seen(flag: Any, sequential: bool) -> bool:
    """``filter_seen`` as the trainer applies it: the flag, for sequential models only."""
    return bool(flag) and sequential


@dataclass(frozen=True)
class RunPlan:
    """What a run does, decided once from the final config (see the module docstring)."""

    model: str
    dataset: str
    #: ``eval_args.mode`` per phase: ``full``, ``labeled``, ``uniN``, ``popN``.
    valid_mode: str
    test_mode: str
    #: ``eval_args.split`` as (kind, value) pairs, e.g. (("LS", "valid_and_test"),).
    split: tuple[tuple[str, Any], ...]
    leave_one_out: bool
    #: Whether full ranking removes each user's earlier items (the flag, sequential models only).
    filter_seen: bool
    #: ``loss_type`` upper-cased, or None when the model has none (Pop, RecBole's general models).
    loss_type: str | None
    #: Training window stride of the full-sequence data (0: off; None: not a plugin model key).
    train_stride: int | None
    #: Whether training draws RecBole's negatives (``train_neg_sample_args`` set).
    needs_training_negatives: bool
    device: str
    world_size: int
    rank: int

    @property
    def valid_protocol(self) -> str:
        return protocol_label(self.valid_mode, self.filter_seen)

    @property
    def test_protocol(self) -> str:
        return protocol_label(self.test_mode, self.filter_seen)

    @property
    def protocol(self) -> str:
        """The run summary's ``protocol``."""
        return run_protocol(self.valid_protocol, self.test_protocol)

    @property
    def sampled_phases(self) -> dict[str, int]:
        """Phase -> N for the phases evaluated against N fixed uniform negatives (``uniN``)."""
        modes = {"valid": self.valid_mode, "test": self.test_mode}
        counts = {phase: uniform_sample_count(mode) for phase, mode in modes.items()}
        return {phase: n for phase, n in counts.items() if n is not None}

    @classmethod
    def resolve(cls, settings: Mapping[str, Any], sequential: bool) -> RunPlan:
        """The plan of a final config's ``settings`` (``final_config_dict``); ``sequential``:
        whether the model is a sequential one."""
        modes = phase_modes(settings.get("eval_args"))
        split = settings.get("eval_args", {}).get("split") or {}
        negatives = settings.get("train_neg_sample_args")
        loss_type = settings.get("loss_type")
        stride = settings.get("train_stride")
        rank = int(settings.get("local_rank") or 0) + int(settings.get("offset") or 0)
        return cls(
            model=str(settings.get("model")),
            dataset=str(settings.get("dataset")),
            valid_mode=str(modes["valid"]),
            test_mode=str(modes["test"]),
            split=tuple((str(k), _frozen(v)) for k, v in dict(split).items()),
            leave_one_out=is_leave_one_out(split),
            filter_seen=effective_filter_seen(settings.get("filter_seen"), sequential),
            loss_type=loss_type_name(loss_type),
            train_stride=stride if isinstance(stride, int) else None,
            needs_training_negatives=_draws_negatives(negatives),
            device=str(settings.get("device")),
            world_size=int(settings.get("world_size") or 1),
            rank=rank,
        )


def _draws_negatives(args: Any) -> bool:
    """RecBole's normalised ``train_neg_sample_args`` (or the raw value) draws negatives."""
    if args is None or args == "None":
        return False
    if isinstance(args, Mapping):
        return args.get("distribution", "none") != "none"
    return True


def _frozen(value: Any) -> Any:
    """A hashable copy of a yaml value (lists become tuples, mappings sorted pairs)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def plan_of(config: Any) -> RunPlan:
    """The plan of ``config``: the one the plugin's ``Config`` built, else (RecBole's own
    ``Config``) made now from its final settings and kept on it."""
    plan = config.__dict__.get(PLAN_ATTRIBUTE)
    if plan is None:
        from recbole.utils import ModelType

        sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL
        plan = RunPlan.resolve(config.final_config_dict, sequential)
        setattr(config, PLAN_ATTRIBUTE, plan)
    return plan
