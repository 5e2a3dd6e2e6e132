"""RecBole's ``Trainer`` with safe checkpoints, a validation history and fast sampled evaluation."""

from __future__ import annotations

import time

import numpy as np
import torch
from recbole.trainer import Trainer

from recbole_sasrec_ext import checkpoint


class PluginTrainer(Trainer):
    """RecBole's ``Trainer`` with these changes:

    * checkpoints hold only tensors and plain data (``checkpoint.CHECKPOINT_FORMAT``), get a name
      unique per run, are written atomically and loaded with ``weights_only=True``
      (``evaluate(load_best_model=True)`` and ``resume_checkpoint`` work on torch >= 2.6);
    * ``history`` records, for every validation, the epoch, the cumulative training seconds
      (evaluation time excluded) and the validation result; ``best_epoch`` the best one;
    * for models that can encode a sequence once and score many candidates
      (``encode_sequences``/``score_candidates``), sampled evaluation encodes each user once
      instead of once per candidate (RecBole repeats the whole forward pass 101 times for uni100).
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
        self._train_loader = None
        self._resumed_rng: dict | None = None

    def _build_optimizer(self, **kwargs):
        betas = self.config["adam_betas"]
        if betas is None or self.config["learner"].lower() != "adam" or kwargs:
            return super()._build_optimizer(**kwargs)
        return torch.optim.Adam(
            self.model.parameters(), lr=self.learning_rate, betas=tuple(betas), weight_decay=self.weight_decay
        )

    # --- checkpoints -------------------------------------------------------------------
    def fit(
        self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
        callback_fn=None,
    ):
        self._train_loader = train_data
        if self._resumed_rng is not None:  # restore last: nothing may draw between here and epoch 1
            checkpoint.set_rng_state(self._resumed_rng, self._loader_generator())
            self._resumed_rng = None
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)

    def _loader_generator(self) -> torch.Generator | None:
        return getattr(self._train_loader, "generator", None)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        dataset = getattr(self._train_loader, "_dataset", None)
        state = {
            "format": checkpoint.CHECKPOINT_FORMAT,
            "config": {
                "model": self.config["model"],
                "dataset": self.config["dataset"],
                "implementation": self.config["implementation"],
                "external": checkpoint.plain(self.config.external_config_dict),
                "final": checkpoint.plain(self.config.final_config_dict),
            },
            "data": None if dataset is None else checkpoint.data_fingerprint(dataset),
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "rng": checkpoint.rng_state(self._loader_generator()),
            "progress": {
                "history": checkpoint.plain(self.history),
                "best_epoch": self.best_epoch,
                "best_seen": None if self._best_seen is None else float(self._best_seen),
                "best_valid_result": {
                    k: float(v) for k, v in (self.best_valid_result or {}).items()
                },
                "train_seconds": float(self.train_seconds),
                "epochs_run": int(self.epochs_run),
            },
        }
        checkpoint.save_atomic(state, path)
        if verbose:
            self.logger.info(f"Saving current: {path}")

    def resume_checkpoint(self, resume_file, data_fingerprint: dict | None = None):
        """Continue from ``resume_file``: weights, optimizer, early-stopping state, history and the
        RNG states (restored when :meth:`fit` starts). With ``data_fingerprint`` (of the training
        data set), a checkpoint of other data is a :class:`PluginError`."""
        state = checkpoint.load(resume_file, map_location=self.device)
        if data_fingerprint is not None:
            checkpoint.check_fingerprint(resume_file, state.get("data"), data_fingerprint)
        self.saved_model_file = str(resume_file)
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        checkpoint.load_weights(self.model, state)
        self.optimizer.load_state_dict(state["optimizer"])
        progress = state.get("progress") or {}
        self.history = list(progress.get("history", []))
        self.best_epoch = progress.get("best_epoch")
        self._best_seen = progress.get("best_seen")
        self.best_valid_result = progress.get("best_valid_result") or None
        self.train_seconds = float(progress.get("train_seconds", 0.0))
        self.epochs_run = int(progress.get("epochs_run", 0))
        self._epoch = int(state["epoch"])
        self._resumed_rng = state.get("rng")
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            path = model_file or self.saved_model_file
            state = checkpoint.load(path, map_location=self.device)
            checkpoint.load_weights(self.model, state)
            self.logger.info(f"Loading model structure and parameters from {path}")
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
        for metric, value in result.items():  # RecBole logs only the valid score
            self.tensorboard.add_scalar(f"Valid/{metric}", float(value), self._epoch)
        return score, result

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
