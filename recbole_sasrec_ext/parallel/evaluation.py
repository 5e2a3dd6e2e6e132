"""Exact evaluation over several processes.

Each rank scores its run of RecBole's evaluation batches (:func:`~recbole_sasrec_ext.parallel.
sharding.eval_batches`), then every rank receives every rank's part of RecBole's collector data
(``rec.topk``, ``rec.meanrank``, ``rec.score``, ``rec.items``, ``data.label``: one row per user or
per scored pair) and concatenates them in rank order: the rows, and so the metrics RecBole's
``Evaluator`` computes from them, are those of one process scoring every batch in order. Every rank
gets the same result (early stopping decides alike everywhere). A per-user recorder attached on
every rank sees only its rank's rows; :func:`gather_recorder` joins them the same way.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.utils import EvaluatorType

from recbole_sasrec_ext.evaluation.per_user import PerUserRecorder
from recbole_sasrec_ext.parallel.sharding import eval_batches

#: The collector's per-batch keys (RecBole's ``Collector.get_data_struct`` resets exactly these).
BATCH_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")


def gather_rows(parts: dict[str, torch.Tensor], world_size: int) -> dict[str, torch.Tensor]:
    """Every rank's ``parts`` (key -> rows on the CPU), concatenated in rank order; a rank that
    scored no batch contributes nothing."""
    gathered: list[dict[str, torch.Tensor] | None] = [None] * world_size
    dist.all_gather_object(gathered, parts)
    keys = [key for key in BATCH_KEYS if any(key in part for part in gathered)]
    return {key: torch.cat([part[key] for part in gathered if key in part], dim=0) for key in keys}


def gather_recorder(recorder: PerUserRecorder, world_size: int) -> PerUserRecorder:
    """Every rank's :class:`PerUserRecorder` (each saw its rank's test batches), joined in rank
    order: the users and rows of the whole sharded evaluation
    (a collective: every rank calls it)."""
    parts: list[PerUserRecorder | None] = [None] * world_size
    dist.all_gather_object(parts, recorder)
    return PerUserRecorder.joined(parts)


@torch.no_grad()
def evaluate_sharded(trainer, eval_data, rank: int, world_size: int) -> dict:
    """RecBole's ``Trainer.evaluate`` loop (no checkpoint loading, no progress bar) over this
    rank's batches, then the gathered collector data evaluated on every rank."""
    trainer.model.eval()
    if isinstance(eval_data, FullSortEvalDataLoader):
        eval_func = trainer._full_sort_batch_eval
        if trainer.item_tensor is None:
            trainer.item_tensor = eval_data._dataset.get_item_feature().to(trainer.device)
    else:
        eval_func = trainer._neg_sample_batch_eval
    if trainer.config["eval_type"] == EvaluatorType.RANKING:
        trainer.tot_item_num = eval_data._dataset.item_num
    collector = trainer.eval_collector
    for batched_data in eval_batches(eval_data, rank, world_size):
        interaction, scores, positive_u, positive_i = eval_func(batched_data)
        collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
    collector.model_collect(trainer.model)
    struct = collector.get_data_struct()  # this rank's rows, on the CPU
    parts = {key: struct[key] for key in BATCH_KEYS if key in struct}
    for key, rows in gather_rows(parts, world_size).items():
        struct[key] = rows
    return trainer.evaluator.evaluate(struct)
