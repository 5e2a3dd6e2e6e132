"""RecBole's ``Trainer`` with safe checkpoints, a validation history, an epoch without host syncs
and fast evaluation."""

from __future__ import annotations

import math
import os
import time
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import EvaluatorType, set_color
from torch.nn.utils.clip_grad import clip_grad_norm_
from tqdm import tqdm

from recbole_sasrec_ext.common.errors import PluginError, TrainingDivergedError
from recbole_sasrec_ext.contract.model import CompilableEncoder
from recbole_sasrec_ext.contract.plan import plan_of
from recbole_sasrec_ext.data.device_loader import BatchPart, DeviceTrainDataLoader
from recbole_sasrec_ext.evaluation.seen_items import SeenItems
from recbole_sasrec_ext.parallel import current as current_group
from recbole_sasrec_ext.parallel.ddp import data_parallel
from recbole_sasrec_ext.parallel.evaluation import evaluate_sharded
from recbole_sasrec_ext.parallel.quiet import drop_tensorboard
from recbole_sasrec_ext.training import checkpoint
from recbole_sasrec_ext.training.lr_schedule import (
    LrScaling,
    LrSchedule,
    make_schedule,
    plateau_factor,
)
from recbole_sasrec_ext.training.other_parameter import encode_other_parameter
from recbole_sasrec_ext.training.sequence_scoring import sequence_scorer
from recbole_sasrec_ext.training.weight_average import WeightAverage


class PluginTrainer(Trainer):
    """RecBole's ``Trainer`` with these changes:

    * checkpoints hold only tensors and plain data (``checkpoint.CHECKPOINT_FORMAT``), get a name
      unique per run, are written atomically and loaded with ``weights_only=True``
      (``evaluate(load_best_model=True)`` and ``resume_checkpoint`` work on torch >= 2.6);
    * ``history`` records, for every validation, the epoch, the cumulative training seconds
      (evaluation time excluded) and the validation result; ``best_epoch`` the best one;
    * an epoch keeps the training loss on the device and reads it once, at the end of the epoch
      (RecBole calls ``loss.item()`` after every batch); the epoch's mean loss is then checked:
      not finite, or above ``divergence_factor`` × the run's first batch loss, raises
      :class:`~recbole_sasrec_ext.common.errors.TrainingDivergedError` and ``fit`` deletes the run's
      checkpoint. Gradient clipping (``clip_grad_norm``), AMP and the GradScaler work as in RecBole;
    * ``weight_ema_epochs`` > 0: validation, checkpoints and so test use an exponential moving
      average of the weights (:mod:`recbole_sasrec_ext.training.weight_average`); training goes
      on with the raw weights, which a checkpoint also holds for resuming;
    * optional large-batch recipe: ``lr_scaling``/``lr_base_batch_size``/``warmup_epochs``
      (:mod:`recbole_sasrec_ext.training.lr_schedule`), and ``torch_compile`` of the training loss;
    * ``lr_plateau_patience`` > 0: the rate is multiplied by ``lr_plateau_factor`` after every
      that many validations in a row without a new best (recomputed from the history on resume);
    * sampled evaluation encodes each user once and scores its candidates by dot products, for
      every model :func:`~recbole_sasrec_ext.training.sequence_scoring.sequence_scorer`
      verifies (the plugin's, and RecBole's GRU4Rec, SASRec and Caser; RecBole re-runs the encoder
      once per candidate, 101 times per user for uni100);
    * full ranking scores flow through :meth:`_full_sort_scores` (B, n_items), then
      :meth:`_mask_full_sort_scores` (padding column, RecBole's history mask): the one place to
      add further masks.
    * ``filter_seen: True`` removes each user's earlier items from full ranking of sequential
      models (:meth:`remove_seen_items`; RecBole keeps them), the target never;
    * in a multi-process run (:mod:`recbole_sasrec_ext.parallel`): the loss runs through
      ``DistributedDataParallel``, each epoch's loss is averaged over the ranks, evaluation is
      sharded and gathered exactly, and only rank 0 writes checkpoints and TensorBoard.
    """

    def __init__(self, config, model):
        # RecBole creates it only if it is missing (check, then create): the processes of a
        # multi-process run race for it, and all but one fail with FileExistsError.
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        super().__init__(config, model)
        self.saved_model_file = str(
            checkpoint.unique_checkpoint_path(self.checkpoint_dir, config["model"],
                                              config["dataset"])
        )
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.epochs_run = 0
        self.best_epoch: int | None = None
        self._epoch = -1
        self._best_seen: float | None = None
        self._train_loader = None
        self._resumed_rng: dict | None = None
        self.divergence_factor = config["divergence_factor"]
        self._initial_loss: float | None = None
        self._schedule: LrSchedule | None = None
        self._compiled_loss = None
        self.plan = plan_of(config)
        self.filter_seen = self.plan.filter_seen
        self._seen_items: dict[int, SeenItems] = {}
        self._eval_dataset = None
        self._group = current_group()
        self._ddp = None
        horizon = config["weight_ema_epochs"] or 0.0
        self._ema = WeightAverage(model, horizon) if horizon > 0 else None
        self._lr_factor = 1.0  # lr_plateau_*: the multiplier in force (from the history)
        if self._group is not None:
            self._join_group()

    def _join_group(self) -> None:
        """Multi-process run: DDP of the training loss, rank 0's checkpoint name on every rank
        (they load the best checkpoint rank 0 wrote), no TensorBoard folder on other ranks."""
        self._ddp = data_parallel(self.model, self.device)
        names = [self.saved_model_file]
        torch.distributed.broadcast_object_list(names, src=0)
        self.saved_model_file = names[0]
        if not self._group.is_main:
            self.tensorboard = drop_tensorboard(self.tensorboard)

    @property
    def writes_files(self) -> bool:
        """Whether this process writes checkpoints (one process, or rank 0)."""
        return self._group is None or self._group.is_main

    def _build_optimizer(self, **kwargs):
        if not kwargs:
            self.learning_rate = self._peak_learning_rate()
        betas = self.config["adam_betas"]
        if betas is None or self.config["learner"].lower() != "adam" or kwargs:
            return super()._build_optimizer(**kwargs)
        return torch.optim.Adam(
            self.model.parameters(), lr=self.learning_rate, betas=tuple(betas),
            weight_decay=self.weight_decay,
        )

    # --- checkpoints -------------------------------------------------------------------
    def fit(
        self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
        callback_fn=None,
    ):
        """RecBole's ``fit``, restoring a resumed run's RNG states first; on
        :class:`TrainingDivergedError` the run's checkpoint is deleted
        (no result of a diverged run); at the end the checkpoint is marked finished (``--resume``
        of it is refused)."""
        self._train_loader = train_data
        if self._resumed_rng is not None:  # restore last: nothing may draw between here and epoch 1
            checkpoint.set_rng_state(self._resumed_rng, self._loader_generator())
            self._resumed_rng = None
        try:
            result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        except TrainingDivergedError:
            if self.writes_files and os.path.exists(self.saved_model_file):
                os.remove(self.saved_model_file)
            raise
        if saved and self.writes_files and os.path.exists(self.saved_model_file):
            checkpoint.mark_finished(self.saved_model_file, int(self.epochs_run))
        return result

    def _loader_generator(self) -> torch.Generator | None:
        return getattr(self._train_loader, "generator", None)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.writes_files:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        dataset = getattr(self._train_loader, "_dataset", None)
        state = {
            "format": checkpoint.CHECKPOINT_FORMAT,
            "config": {
                **checkpoint.plain_config(self.config),
                "implementation": self.config["implementation"],
            },
            "data": None if dataset is None else checkpoint.data_fingerprint(dataset),
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self._evaluated_state(),
            "other_parameter": encode_other_parameter(self.model),  # weights-only loadable
            "optimizer": self.optimizer.state_dict(),
            "rng": checkpoint.rng_state(self._loader_generator()),
            "progress": {
                "history": checkpoint.plain(self.history),
                "best_epoch": self.best_epoch,
                "best_seen": None if self._best_seen is None else float(self._best_seen),
                # RecBole saves a new best *before* it sets best_valid_result: the validation that
                # triggered this save is the best one
                "best_valid_result": (
                    dict(self.history[-1]["valid_result"]) if self.history else {}
                ),
                "train_seconds": float(self.train_seconds),
                "epochs_run": int(self.epochs_run),
            },
        }
        if self._ema is not None:  # what training continues from
            state["weight_ema"] = {"steps": self._ema.steps, "raw": self.model.state_dict()}
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
        if self._ema is not None:
            self._resume_weight_average(resume_file, state)
        self.optimizer.load_state_dict(state["optimizer"])
        progress = state.get("progress") or {}
        self.history = list(progress.get("history", []))
        self.best_epoch = progress.get("best_epoch")
        self._best_seen = progress.get("best_seen")
        self.best_valid_result = progress.get("best_valid_result") or None
        self.train_seconds = float(progress.get("train_seconds", 0.0))
        self.epochs_run = int(progress.get("epochs_run", 0))
        self._epoch = int(state["epoch"])
        self._lr_factor = self._plateau_factor()
        self._resumed_rng = state.get("rng")
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def _evaluated_state(self) -> dict:
        """The weights validation scores: the moving average with ``weight_ema_epochs``."""
        with self._evaluated_weights():
            return {k: v.clone() for k, v in self.model.state_dict().items()}

    def _evaluated_weights(self) -> AbstractContextManager:
        return nullcontext() if self._ema is None else self._ema.applied()

    def _resume_weight_average(self, resume_file, state: dict) -> None:
        """The model holds the checkpoint's averaged weights: they become the average, and
        training continues from the raw weights saved beside them."""
        saved = state.get("weight_ema")
        if saved is None:
            raise PluginError(
                f"{resume_file}: weight_ema_epochs is set but the checkpoint was written without "
                f"it; resume with the settings it was trained with"
            )
        self._ema.adopt_model_weights()
        self._ema.steps = int(saved["steps"])
        self.model.load_state_dict(saved["raw"])

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's ``evaluate``; a checkpoint is loaded safely, and the model's current weights
        (no checkpoint loaded: validation, or ``load_best_model=False``) are evaluated as their
        moving average with ``weight_ema_epochs`` (a checkpoint already holds the average)."""
        loaded = bool(load_best_model and eval_data)
        if loaded:
            if self._group is not None:
                torch.distributed.barrier()  # rank 0 has written its last checkpoint
            path = model_file or self.saved_model_file
            state = checkpoint.load(path, map_location=self.device)
            checkpoint.load_weights(self.model, state)
            self.logger.info(f"Loading model structure and parameters from {path}")
        self._eval_dataset = eval_data._dataset if eval_data else None
        with nullcontext() if loaded else self._evaluated_weights():
            if self._group is not None and eval_data:
                return evaluate_sharded(self, eval_data, self._group.rank, self._group.world_size)
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    # --- training -----------------------------------------------------------------------------
    def _peak_learning_rate(self) -> float:
        scaling = self.config["lr_scaling"]
        if scaling is None:
            return self.config["learning_rate"]
        return make_schedule(
            self.config["learning_rate"], LrScaling(scaling), self.config["train_batch_size"],
            self.config["lr_base_batch_size"], 0.0, 1,
        ).peak_lr

    def _lr_schedule(self, steps_per_epoch: int) -> LrSchedule | None:
        """The warm-up schedule, or None when ``warmup_epochs`` is 0 / unset."""
        warmup = self.config["warmup_epochs"] or 0.0
        if warmup <= 0:
            return None
        return LrSchedule(self.learning_rate, math.ceil(warmup * steps_per_epoch))

    def _loss_function(self):
        """``calculate_loss``; with ``torch_compile`` the model's fixed-shape sequence encoder
        (``encode``, the plugin's models) is compiled once (the loss, whose masked gather has a
        data-dependent shape, stays eager); models without ``encode`` get ``calculate_loss``
        compiled with dynamic shapes."""
        if not self.config["torch_compile"]:
            return self.model.calculate_loss
        if self._compiled_loss is None:
            if isinstance(self.model, CompilableEncoder):
                self.model.encode = torch.compile(self.model.encode)
                self._compiled_loss = self.model.calculate_loss
            else:
                self._compiled_loss = torch.compile(self.model.calculate_loss, dynamic=True)
        return self._compiled_loss


    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = time.perf_counter()
        if hasattr(train_data, "set_epoch"):  # a multi-process run's loader: the epoch's order
            train_data.set_epoch(epoch_idx)
        # several processes run this loop too (RecBole's own multi-process path, single_spec
        # False, is never taken: the plugin runs DDP itself, recbole_sasrec_ext.parallel)
        loss = self._device_epoch(train_data, epoch_idx, loss_func, show_progress)
        self.train_seconds += time.perf_counter() - start
        self.epochs_run += 1
        self._epoch = epoch_idx
        return loss

    def _device_epoch(self, train_data, epoch_idx, loss_func, show_progress):
        """RecBole's ``Trainer._train_epoch`` without a host sync per batch: the losses are summed
        on the device and read once; the divergence check runs on the epoch's mean."""
        self.model.train()
        loss_func = loss_func or self._loss_function()
        if self._ddp is not None:  # gradients averaged over the ranks at every step
            self._ddp.module.loss_func = loss_func
            loss_func = self._ddp
        steps = len(train_data)
        schedule = self._lr_schedule(steps)
        iter_data = (
            tqdm(train_data, total=steps, ncols=100,
                 desc=set_color(f"Train {epoch_idx:>5}", "pink"))
            if show_progress
            else train_data
        )
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.enable_scaler)
        total, first, n_batches = None, None, 0
        for batch_idx, interaction in enumerate(iter_data):
            if schedule is not None:
                lr = schedule.lr_at(epoch_idx * steps + batch_idx) * self._lr_factor
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
            interaction = interaction.to(self.device)
            self.optimizer.zero_grad()
            batch_parts = None  # () or (k,): the batch's loss (parts), summed over its BatchParts
            for part in _batch_parts(train_data, interaction, whole=self._ddp is not None):
                with torch.autocast(device_type=self.device.type, enabled=self.enable_amp):
                    losses = loss_func(part.rows)
                parts = torch.stack(losses) if isinstance(losses, tuple) else losses  # () or (k,)
                if part.share != 1.0:
                    parts = parts * part.share
                loss = parts.sum() if isinstance(losses, tuple) else parts
                scaler.scale(loss).backward()  # gradients add up over the batch's parts
                detached = parts.detach().double()  # sums like RecBole's Python floats
                batch_parts = detached if batch_parts is None else batch_parts + detached
            total = batch_parts if total is None else total + batch_parts
            if first is None:
                first = batch_parts.sum()
            n_batches += 1
            if self.clip_grad_norm:
                clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            scaler.step(self.optimizer)
            scaler.update()
            if self._ema is not None:
                self._ema.update(steps)
        if total is None:
            return 0.0
        values = torch.cat([total.reshape(-1), first.reshape(1)])  # (parts + 1,)
        if self._group is not None:  # every rank sees the mean over ranks (and stops alike)
            torch.distributed.all_reduce(values)
            values = values / self._group.world_size
        values = values.tolist()  # the epoch's one sync
        sums, first_value = values[:-1], values[-1]
        self._check_divergence(epoch_idx, sum(sums) / n_batches, first_value)
        if n_batches == 1 and self._group is None:  # the epoch's mean predates its only step
            self._check_after_step(epoch_idx, loss_func, interaction)
        return tuple(sums) if isinstance(losses, tuple) else sums[0]

    @torch.no_grad()
    def _check_after_step(self, epoch_idx: int, loss_func, interaction) -> None:
        """The divergence check on the loss of the epoch's only batch after its step (eval mode,
        RNG states restored: training draws the same numbers as without the check)."""
        cpu_state = torch.random.get_rng_state()
        cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        self.model.eval()
        try:
            with torch.autocast(device_type=self.device.type, enabled=self.enable_amp):
                losses = loss_func(interaction)
        finally:
            self.model.train()
            torch.random.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state_all(cuda_state)
        total = torch.stack(losses).sum() if isinstance(losses, tuple) else losses
        self._check_divergence(epoch_idx, float(total.detach().double()), float("nan"))

    def _check_divergence(self, epoch_idx: int, mean_loss: float, first_batch_loss: float) -> None:
        """Raise :class:`TrainingDivergedError` if ``mean_loss`` is not finite or above
        ``divergence_factor`` × the run's first batch loss (when that loss is positive)."""
        if not math.isfinite(mean_loss):
            raise TrainingDivergedError(epoch_idx, mean_loss)
        if self._initial_loss is None and math.isfinite(first_batch_loss):
            self._initial_loss = first_batch_loss
        factor, initial = self.divergence_factor, self._initial_loss
        if (factor is not None and initial is not None and initial > 0
                and mean_loss > factor * initial):
            raise TrainingDivergedError(epoch_idx, mean_loss, factor * initial)

    # --- bookkeeping ---------------------------------------------------------------------

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = super()._valid_epoch(valid_data, show_progress)  # evaluate(): the average
        best = self._best_seen
        # a tie is a new best, as RecBole's early stopping saves it: best_epoch names the
        # checkpoint that is tested
        if best is None or (score >= best if self.valid_metric_bigger else score <= best):
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
        self._apply_plateau_factor()
        return score, result

    def _plateau_factor(self) -> float:
        """The learning-rate multiplier ``lr_plateau_*`` gives after the validations so far."""
        return plateau_factor(
            [entry["valid_score"] for entry in self.history],
            self.config["lr_plateau_patience"] or 0, self.config["lr_plateau_factor"],
            self.valid_metric_bigger,
        )

    def _apply_plateau_factor(self) -> None:
        """After a validation: the rate becomes peak × the plateau multiplier when that changed
        (a warm-up schedule multiplies its own rate by it at every step)."""
        factor = self._plateau_factor()
        if factor == self._lr_factor:
            return
        self._lr_factor = factor
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate * factor
        self.logger.info(f"learning rate now {self.learning_rate * factor:.3g} "
                         f"(x {factor:.3g}: lr_plateau_patience)")

    # --- fast evaluation ----------------------------------------------------------------------
    def _full_sort_scores(self, interaction) -> torch.Tensor:
        """Scores (B, n_items) of every item for the users of ``interaction`` (on the device),
        before any mask. RecBole's fallback (``predict`` per item) for models without
        ``full_sort_predict``."""
        try:
            scores = self.model.full_sort_predict(interaction)  # (B, n_items)
        except NotImplementedError:
            inter_len = len(interaction)
            new_inter = interaction.repeat_interleave(self.tot_item_num)
            new_inter.update(self.item_tensor.repeat(inter_len))
            if len(new_inter) <= self.test_batch_size:
                scores = self.model.predict(new_inter)
            else:
                scores = self._spilt_predict(new_inter, len(new_inter))
        return scores.view(-1, self.tot_item_num)  # (B, n_items)

    def _mask_full_sort_scores(self, scores: torch.Tensor, history_index) -> torch.Tensor:
        """RecBole's masks, in place: the padding item, and ``history_index`` when RecBole gives one
        (general models' seen items)."""
        scores[:, 0] = -np.inf
        if history_index is not None:
            scores[history_index] = -np.inf
        return scores

    def _full_sort_batch_eval(self, batched_data):
        interaction, history_index, positive_u, positive_i = batched_data
        interaction = interaction.to(self.device)
        scores = self._mask_full_sort_scores(self._full_sort_scores(interaction), history_index)
        if self.filter_seen:
            self.remove_seen_items(interaction, scores, positive_i)
        return interaction, scores, positive_u, positive_i

    def remove_seen_items(
        self, interaction, scores: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """``filter_seen``: set to -inf, in place, the scores (B, n_items) of the items each row's
        user interacted with before the row's target, keeping the target's own score (B,).

        Needs only the rows' user ids (``interaction[USER_ID_FIELD]``, one sequential evaluation
        row per user and phase, row i scored in ``scores[i]``) and the targets; the seen sets come
        from ``dataset.user_item_pairs`` of the data set being evaluated (:class:`SeenItems`).
        """
        users = interaction[self.config["USER_ID_FIELD"]].to(self.device)  # (B,)
        return self._seen_items_of(self._eval_dataset).remove(
            scores, users, targets.to(self.device)
        )

    def _seen_items_of(self, dataset) -> SeenItems:
        key = id(dataset.user_item_pairs[0])
        if key not in self._seen_items:
            users, items = dataset.user_item_pairs
            self._seen_items[key] = SeenItems.from_pairs(
                users, items, dataset.user_num
            ).to(self.device)
        return self._seen_items[key]

    def _neg_sample_batch_eval(self, batched_data):
        scorer = sequence_scorer(self.model)
        if scorer is None or self.config["eval_type"] != EvaluatorType.RANKING:
            return super()._neg_sample_batch_eval(batched_data)
        interaction, row_idx, positive_u, positive_i = batched_data
        interaction = interaction.to(self.device)
        row_idx = row_idx.to(self.device)
        n_users = int(positive_u[-1]) + 1
        first_row = torch.full((n_users,), len(row_idx), dtype=torch.long, device=self.device)
        first_row.scatter_reduce_(0, row_idx, torch.arange(len(row_idx), device=self.device),
                                  reduce="amin")
        sequences = scorer.encode(interaction[first_row])  # (U, d)
        items = interaction[self.config["ITEM_ID_FIELD"]]  # (N,)
        origin_scores = scorer.score(sequences[row_idx], items)  # (N,)
        scores = torch.full((n_users, self.tot_item_num), -np.inf, device=self.device)
        scores[row_idx, items] = origin_scores
        return interaction, scores, positive_u, positive_i


def _batch_parts(train_data, interaction, whole: bool) -> list[BatchPart]:
    """The parts a training step computes ``interaction`` in: the device loader's
    :meth:`~DeviceTrainDataLoader.length_parts` (``length_split``), else the batch itself. With
    ``whole`` (a multi-process run: DDP synchronises once per backward, and the ranks' batches
    may have different numbers of parts) always the batch itself."""
    if not whole and isinstance(train_data, DeviceTrainDataLoader):
        return train_data.length_parts(interaction)
    return [BatchPart(interaction, 1.0)]
