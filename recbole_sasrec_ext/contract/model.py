"""The model contract: what a model declares so that the plugin's pipeline treats it as its own.

A RecBole model (``AbstractRecommender``) runs in the pipeline as it is. A model that also
satisfies :class:`PluginModel` (the plugin's SASRec, RKSA and Pop; a user's model may too) tells
the pipeline, through class attributes, which data it reads, which config keys it takes and how it
trains. Optional abilities are separate protocols, checked with ``isinstance``:
:class:`Explainable`, :class:`SequenceEncoder`, :class:`CompilableEncoder`; the attention layers
of the transformer models satisfy :class:`AttentionLayer`.

The pipeline reads these only through :func:`declarations` and ``isinstance`` checks: nothing
probes a model with ``getattr``. ``tests/test_architecture.py`` checks that every registered
model and the user-model example satisfy :class:`PluginModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from recbole_sasrec_ext.contract.keys import Key, Rule


@runtime_checkable
class PluginModel(Protocol):
    """Class attributes of a model the plugin's pipeline reads (``isinstance`` works on the class
    and on an instance)."""

    #: The data set class the model reads (a ``FullSequenceDataset`` for the transformer models),
    #: or None for RecBole's choice (``OrderedSequentialDataset`` for sequential models).
    DATASET_CLASS: ClassVar[type | None]
    #: Whether ``calculate_loss`` reads the next item of every position (``TARGET_LIST_FIELD``):
    #: then ``DATASET_CLASS`` must be a ``FullSequenceDataset``.
    TARGETS_AT_EVERY_POSITION: ClassVar[bool]
    #: The model's own config keys, validated once when the ``Config`` is built.
    CONFIG_KEYS: ClassVar[tuple[Key, ...]]
    #: Rules between the model's keys (e.g. ``n_heads`` divides ``hidden_size``).
    CONFIG_RULES: ClassVar[tuple[Rule, ...]]
    #: Whether the model is fitted in one pass at construction (Pop): the run summary's
    #: ``stopped_by`` is ``one_pass``.
    ONE_PASS: ClassVar[bool]
    #: Whether training needs RecBole's sampled negatives (``train_neg_sample_args``); the
    #: plugin's losses draw their own, so its models say False and the config gets
    #: ``train_neg_sample_args: ~`` unless the user set it.
    NEEDS_TRAINING_NEGATIVES: ClassVar[bool]


@runtime_checkable
class Explainable(Protocol):
    """A model that can show one test user's attention (RKSA): the run summary's ``explanation``."""

    def explain_example(self, test_data: Any) -> dict:
        """``Explanation.from_dict`` input for one user of ``test_data``."""


@runtime_checkable
class SequenceEncoder(Protocol):
    """A model whose scores are "sequence representation · item embedding": sampled evaluation
    encodes each user once (:func:`recbole_sasrec_ext.training.sequence_scoring.sequence_scorer`).
    """

    def encode_sequences(self, interaction: Any) -> Any:
        """(B, d) representation of each row's whole sequence."""

    def score_candidates(self, sequences: Any, items: Any) -> Any:
        """(N,) scores of ``items`` (N,) for ``sequences`` (N, d)."""


@runtime_checkable
class CompilableEncoder(Protocol):
    """A model with a fixed-shape sequence encoder: ``torch_compile`` compiles ``encode`` only
    (else the whole ``calculate_loss``, with dynamic shapes)."""

    def encode(self, interaction: Any) -> Any:
        """The encoder's output for ``interaction`` (fixed shapes)."""


@runtime_checkable
class AttentionLayer(Protocol):
    """An attention layer of a transformer block."""

    #: Whether it takes keys/values apart from the queries (``layer_norm: sasrec`` needs it).
    SEPARATE_KV: ClassVar[bool]


@dataclass(frozen=True)
class Declarations:
    """What a model class declares, with RecBole's behaviour for a model that declares nothing."""

    dataset_class: type | None = None
    targets_at_every_position: bool = False
    config_keys: tuple[Key, ...] = ()
    config_rules: tuple[Rule, ...] = ()
    one_pass: bool = False
    #: None: decided by ``loss_type`` (RecBole's models).
    needs_training_negatives: bool | None = None


def declarations(model_class: type) -> Declarations:
    """The declarations of ``model_class``: its own when it satisfies :class:`PluginModel`, a
    partial set for a user's model that only declares ``CONFIG_KEYS`` (and ``CONFIG_RULES``),
    else none (RecBole's models)."""
    if isinstance(model_class, PluginModel):
        return Declarations(
            dataset_class=model_class.DATASET_CLASS,
            targets_at_every_position=model_class.TARGETS_AT_EVERY_POSITION,
            config_keys=tuple(model_class.CONFIG_KEYS),
            config_rules=tuple(model_class.CONFIG_RULES),
            one_pass=model_class.ONE_PASS,
            needs_training_negatives=model_class.NEEDS_TRAINING_NEGATIVES,
        )
    if isinstance(model_class, _DeclaresKeys):
        return Declarations(config_keys=tuple(model_class.CONFIG_KEYS))
    return Declarations()


@runtime_checkable
class _DeclaresKeys(Protocol):
    """The one declaration a user's model may make alone: its config keys."""

    CONFIG_KEYS: ClassVar[tuple[Key, ...]]


def separate_kv(attention: object) -> bool:
    """Whether an attention layer takes keys/values apart from the queries (False for a layer
    that does not declare it)."""
    return isinstance(attention, AttentionLayer) and bool(attention.SEPARATE_KV)
