"""Encode a sequence once, score many items: the adapters the trainer's fast evaluation uses.

RecBole scores sampled candidates (uni100) by calling ``predict`` once per candidate row, which
re-runs the whole sequence encoder 101 times per user. Where a model's ``predict`` is
"sequence representation · item embedding", encoding each user once and taking dot products gives
the same scores. :func:`sequence_scorer` returns such an adapter only where that is verified:

* the plugin's models (``encode_sequences`` / ``score_candidates``);
* RecBole's GRU4Rec, SASRec and Caser, whose ``predict`` is
  ``(forward(...) * item_embedding(item)).sum(1)`` (read in recbole 1.2.1's source) — only when
  the model's class does not override ``forward``/``predict``/``full_sort_predict``.

Every other model gets ``None`` and the trainer keeps RecBole's per-candidate path.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import torch

from recbole_sasrec_ext.contract.model import SequenceEncoder

#: RecBole models verified to score as "forward(...) · item_embedding": class -> forward's inputs.
_RECBOLE_DOT_MODELS = {
    "recbole.model.sequential_recommender.gru4rec:GRU4Rec": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "recbole.model.sequential_recommender.sasrec:SASRec": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "recbole.model.sequential_recommender.caser:Caser": ("USER_ID", "ITEM_SEQ"),
}
_METHODS = ("forward", "predict", "full_sort_predict")


@dataclass(frozen=True)
class SequenceScorer:
    """``encode(interaction) -> (B, d)``; ``score(sequences (N, d), items (N,)) -> (N,)``."""

    encode: Callable[[object], torch.Tensor]
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _recbole_class(path: str) -> type | None:
    module, name = path.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _recbole_scorer(model) -> SequenceScorer | None:
    for path, fields in _RECBOLE_DOT_MODELS.items():
        cls = _recbole_class(path)
        if cls is None or not isinstance(model, cls):
            continue
        if any(getattr(type(model), m) is not getattr(cls, m) for m in _METHODS):
            return None  # a subclass changed how it scores: not verified
        return _dot_scorer(model, [getattr(model, f) for f in fields])
    return None


def _dot_scorer(model, input_fields: list[str]) -> SequenceScorer:
    """``forward(*inputs)`` (B, d) and its dot product with ``item_embedding``
    (RecBole's predict)."""
    embedding = model.item_embedding
    return SequenceScorer(
        encode=lambda inter: model.forward(*(inter[n] for n in input_fields)),  # (B, d)
        score=lambda seq, items: torch.mul(seq, embedding(items)).sum(dim=1),  # (N,)
    )


def sequence_scorer(model) -> SequenceScorer | None:
    """The encode-once adapter of ``model``, or ``None`` where it is not verified."""
    if isinstance(model, SequenceEncoder):
        return SequenceScorer(encode=model.encode_sequences, score=model.score_candidates)
    return _recbole_scorer(model)
