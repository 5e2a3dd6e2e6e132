"""``recbole.trainer.trainer``: RecBole's own trainers with weights-only checkpoints.

RecBole 1.2.1 pickles its ``Config`` and the models' extra objects (``other_parameter()``: scipy
matrices, numpy arrays, sub-modules, defaultdicts) into checkpoints; torch >= 2.6 loads with
``weights_only=True`` and refuses them. The replacements installed here by
:mod:`recbole_sasrec_ext.compat` write what the plugin's trainer writes (tensors and plain data,
atomically, the same ``config`` layout) and load with ``weights_only=True``; ``weights_only`` is
never turned off. The plugin's ``PluginTrainer`` overrides these methods and is not affected
(its ``evaluate`` calls RecBole's with ``load_best_model=False``, which runs RecBole's unchanged).
"""

from __future__ import annotations

from recbole_sasrec_ext.compat.patching import MARK, replace_attr
from recbole_sasrec_ext.training import checkpoint
from recbole_sasrec_ext.training.other_parameter import encode_other_parameter

#: Format tag of checkpoints written by RecBole's trainers through this module.
RECBOLE_CHECKPOINT_FORMAT = "recbole_sasrec_ext/recbole-trainer/1"
FORMATS = (RECBOLE_CHECKPOINT_FORMAT,)
load_weights = checkpoint.load_weights  # one implementation for both trainers


# --- replacements for recbole.trainer.trainer ----------------------------------------------
def _checkpoint_state(trainer, epoch, **fields) -> dict:
    """What every RecBole checkpoint the plugin writes holds: format, plain config, epoch, then
    ``fields`` (the trainer-specific entries)."""
    return {
        "format": RECBOLE_CHECKPOINT_FORMAT,
        "config": checkpoint.plain_config(trainer.config),
        "epoch": int(epoch),
        **fields,
    }


def _training_state(trainer, epoch, **fields) -> dict:
    """:func:`_checkpoint_state` plus what ``resume_checkpoint`` reads back: step and best score."""
    return _checkpoint_state(
        trainer,
        epoch,
        cur_step=int(trainer.cur_step),
        best_valid_score=float(trainer.best_valid_score),
        **fields,
    )


def _save_checkpoint(self, epoch, verbose=True, **kwargs):
    """``Trainer._save_checkpoint``: tensors and plain data, written atomically."""
    from recbole.utils import set_color

    if not self.config["single_spec"] and self.config["local_rank"] != 0:
        return
    saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
    state = _training_state(
        self,
        epoch,
        state_dict=self.model.state_dict(),
        other_parameter=encode_other_parameter(self.model),
        optimizer=self.optimizer.state_dict(),
    )
    checkpoint.save_atomic(state, saved_model_file)
    if verbose:
        self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


def resume_checkpoint(self, resume_file):
    """``Trainer.resume_checkpoint``, loading weights-only."""
    resume_file = str(resume_file)
    self.saved_model_file = resume_file
    state = checkpoint.load(resume_file, map_location=self.device, formats=FORMATS)
    self.start_epoch = state["epoch"] + 1
    self.cur_step = state["cur_step"]
    self.best_valid_score = state["best_valid_score"]
    if str(state["config"]["model"]).lower() != str(self.config["model"]).lower():
        self.logger.warning(
            "Architecture configuration given in config file is different from that of checkpoint. "
            "This may yield an exception while state_dict is being loaded."
        )
    load_weights(self.model, state)
    self.optimizer.load_state_dict(state["optimizer"])
    self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")


def _evaluate_loading_weights_only(original):
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """``Trainer.evaluate``; the best model is loaded weights-only, then RecBole's runs."""
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            state = checkpoint.load(checkpoint_file, map_location=self.device, formats=FORMATS)
            load_weights(self.model, state)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return original(
            self,
            eval_data,
            load_best_model=False,
            model_file=model_file,
            show_progress=show_progress,
        )

    return evaluate


def save_pretrained_model(self, epoch, saved_model_file):
    """``PretrainTrainer.save_pretrained_model``: tensors and plain data (S3Rec and RaCT load
    the file with ``torch.load``, weights-only by default on torch >= 2.6)."""
    state = _checkpoint_state(
        self,
        epoch,
        state_dict=self.model.state_dict(),
        optimizer=self.optimizer.state_dict(),
        other_parameter=encode_other_parameter(self.model),
    )
    checkpoint.save_atomic(state, saved_model_file)
    self.saved_model_file = saved_model_file


def _save_decision_tree_checkpoint(self, epoch):
    """``DecisionTreeTrainer._save_checkpoint``: its ``state_dict`` is the booster's file name."""
    state = _training_state(self, epoch, state_dict=str(self.temp_best_file), other_parameter=None)
    checkpoint.save_atomic(state, self.saved_model_file)


def patch_trainers(module) -> None:
    """Install the replacements into ``recbole.trainer.trainer`` (idempotent)."""
    fix = "torch_weights_only"
    replace_attr(module.Trainer, "_save_checkpoint", _save_checkpoint, fix)
    replace_attr(module.Trainer, "resume_checkpoint", resume_checkpoint, fix)
    original = module.Trainer.__dict__["evaluate"]
    if getattr(original, MARK, None) is None:
        replace_attr(module.Trainer, "evaluate", _evaluate_loading_weights_only(original), fix)
    replace_attr(module.PretrainTrainer, "save_pretrained_model", save_pretrained_model, fix)
    replace_attr(
        module.DecisionTreeTrainer, "_save_checkpoint", _save_decision_tree_checkpoint, fix
    )
