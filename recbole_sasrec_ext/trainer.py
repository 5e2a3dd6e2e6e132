"""RecBole's ``Trainer`` with safe checkpoints, a validation history and fast sampled evaluation."""

from __future__ import annotations

import time

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import ModelType

from recbole_sasrec_ext import checkpoint
from recbole_sasrec_ext.evaluation.seen_items import SeenItems


class PluginTrainer(Trainer):
    """RecBole's ``Trainer`` with these changes:

    * checkpoints hold only tensors and plain data (``checkpoint.CHECKPOINT_FORMAT``), get a name
      unique per run, are written atomically and loaded with ``weights_only=True``
      (``evaluate(load_best_model=True)`` and ``resume_checkpoint`` work on torch >= 2.6);
    * ``history`` records, for every validation, the epoch, the cumulative training seconds
      (evaluation time excluded) and the validation result; ``best_epoch`` the best one;
    * for models that can encode a sequence once and score many candidates
      (``encode_sequences``/``score_candidates``), sampled evaluation encodes each user once
      instead of once per candidate (RecBole repeats the whole forward pass 101 times for uni100);
    * ``filter_seen: True`` removes each user's earlier items from full ranking of sequential
      models (:meth:`remove_seen_items`; RecBole keeps them), the target never.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.saved_model_file = str(
            checkpoint.unique_checkpoint_path(self.checkpoint_dir, config["model"], config["dataset"])
        )
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.epochs_run = 0
        self.best_epoch: int | None = None
        self._epoch = -1
        self._best_seen: float | None = None
        self.filter_seen = bool(config["filter_seen"]) and config["MODEL_TYPE"] == ModelType.SEQUENTIAL
        self._seen_items: dict[int, SeenItems] = {}
        self._eval_dataset = None

    def _build_optimizer(self, **kwargs):
        betas = self.config["adam_betas"]
        if betas is None or self.config["learner"].lower() != "adam" or kwargs:
            return super()._build_optimizer(**kwargs)
        return torch.optim.Adam(
            self.model.parameters(), lr=self.learning_rate, betas=tuple(betas), weight_decay=self.weight_decay
        )

    # --- checkpoints -------------------------------------------------------------------
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "format": checkpoint.CHECKPOINT_FORMAT,
            "config": {
                "model": self.config["model"],
                "dataset": self.config["dataset"],
                "implementation": self.config["implementation"],
                "external": checkpoint.plain(self.config.external_config_dict),
                "final": checkpoint.plain(self.config.final_config_dict),
            },
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        }
        checkpoint.save_atomic(state, path)
        if verbose:
            self.logger.info(f"Saving current: {path}")

    def resume_checkpoint(self, resume_file):
        state = checkpoint.load(resume_file, map_location=self.device)
        self.saved_model_file = str(resume_file)
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            path = model_file or self.saved_model_file
            state = checkpoint.load(path, map_location=self.device)
            self.model.load_state_dict(state["state_dict"])
            self.model.load_other_parameter(state.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {path}")
        self._eval_dataset = eval_data._dataset if eval_data else None
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    # --- bookkeeping ---------------------------------------------------------------------
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        self.train_seconds += time.perf_counter() - start
        self.epochs_run += 1
        self._epoch = epoch_idx
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = super()._valid_epoch(valid_data, show_progress)
        best = self._best_seen
        if best is None or (score > best if self.valid_metric_bigger else score < best):
            self._best_seen = score
            self.best_epoch = self._epoch
        self.history.append(
            {
                "epoch": self._epoch,
                "train_seconds": round(self.train_seconds, 4),
                "valid_score": float(score),
                "valid_result": {k: float(v) for k, v in result.items()},
            }
        )
        return score, result

    # --- full ranking ---------------------------------------------------------------------------
    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if self.filter_seen:
            self.remove_seen_items(interaction, scores, positive_i)
        return interaction, scores, positive_u, positive_i

    def remove_seen_items(self, interaction, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``filter_seen``: set to -inf, in place, the scores (B, n_items) of the items each row's
        user interacted with before the row's target, keeping the target's own score (B,).

        Needs only the rows' user ids (``interaction[USER_ID_FIELD]``, one sequential evaluation
        row per user and phase, row i scored in ``scores[i]``) and the targets; the seen sets come
        from ``dataset.user_item_pairs`` of the data set being evaluated (:class:`SeenItems`).
        """
        users = interaction[self.config["USER_ID_FIELD"]].to(self.device)  # (B,)
        return self._seen_items_of(self._eval_dataset).remove(scores, users, targets.to(self.device))

    def _seen_items_of(self, dataset) -> SeenItems:
        key = id(dataset.user_item_pairs[0])
        if key not in self._seen_items:
            users, items = dataset.user_item_pairs
            self._seen_items[key] = SeenItems.from_pairs(users, items, dataset.user_num).to(self.device)
        return self._seen_items[key]

    # --- fast sampled evaluation -----------------------------------------------------------
    def _neg_sample_batch_eval(self, batched_data):
        encode = getattr(self.model, "encode_sequences", None)
        if encode is None:
            return super()._neg_sample_batch_eval(batched_data)
        interaction, row_idx, positive_u, positive_i = batched_data
        interaction = interaction.to(self.device)
        row_idx = row_idx.to(self.device)
        n_users = int(positive_u[-1]) + 1
        first_row = torch.full((n_users,), len(row_idx), dtype=torch.long, device=self.device)
        first_row.scatter_reduce_(0, row_idx, torch.arange(len(row_idx), device=self.device), reduce="amin")
        sequences = encode(interaction[first_row])  # (U, d)
        items = interaction[self.config["ITEM_ID_FIELD"]]  # (N,)
        origin_scores = self.model.score_candidates(sequences[row_idx], items)  # (N,)
        scores = torch.full((n_users, self.tot_item_num), -np.inf, device=self.device)
        scores[row_idx, items] = origin_scores
        return interaction, scores, positive_u, positive_i
