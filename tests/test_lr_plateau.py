"""``lr_plateau_patience`` / ``lr_plateau_factor``: the multiplier from a validation history by
hand, the trainer's learning rate after scripted validations, and its return on resume."""

import pytest
from conftest import fast_config
from recbole.trainer import Trainer

from recbole_sasrec_ext import Config, PluginError
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.training import checkpoint
from recbole_sasrec_ext.training.lr_schedule import plateau_factor
from recbole_sasrec_ext.training.trainer import PluginTrainer


@pytest.mark.parametrize(
    ("scores", "patience", "bigger", "expected"),
    [
        ([1, 0, 0, 0, 0], 2, True, 0.25),  # 4 without a new best: decays at the 2nd and 4th
        ([1, 0, 0, 0, 0], 0, True, 1.0),  # off
        ([1, 0, 2, 0, 3], 2, True, 1.0),  # a new best every other validation: never 2 in a row
        ([1, 0, 1, 0], 1, True, 0.25),  # a tie is a new best (RecBole's early stopping too)
        ([3, 2, 4, 1], 1, False, 0.5),  # lower is better: 2 and 1 are new bests, 4 is not
        ([0.1, 0.05, 0.05, 0.2, 0.1], 1, True, 0.125),  # a new best keeps the rate it has
    ],
)
def test_multiplier_by_hand(scores, patience, bigger, expected):
    assert plateau_factor(scores, patience, 0.5, bigger) == pytest.approx(expected)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5])
def test_factor_outside_the_open_unit_interval_is_a_config_error(tiny_data, value):
    with pytest.raises(PluginError, match=f"'lr_plateau_factor' = {value!r} is not allowed"):
        Config("SASRec", "tiny", config_dict=fast_config(tiny_data, lr_plateau_factor=value))


SCRIPTED = [0.10, 0.05, 0.05, 0.20, 0.10]  # validation scores of epochs 0-4


def _trainer(tiny_data, tmp_path, **extra):
    settings = {"learning_rate": 0.004, "lr_plateau_patience": 1, "lr_plateau_factor": 0.5,
                "stopping_step": 10, "checkpoint_dir": str(tmp_path), **extra}
    config = Config("SASRec", "tiny", config_dict=fast_config(tiny_data, **settings))
    _, train, valid, _, model = build(config)
    return PluginTrainer(config, model), train, valid


def _script_validation(monkeypatch, scores):
    """RecBole's own validation returns the scripted scores in turn."""
    queue = list(scores)

    def scripted(self, valid_data, show_progress=False):
        score = queue.pop(0)
        return score, {"ndcg@10": score}

    monkeypatch.setattr(Trainer, "_valid_epoch", scripted)


def test_trainer_rate_follows_the_validations_and_resume_restores_it(
    tiny_data, tmp_path, monkeypatch
):
    _script_validation(monkeypatch, SCRIPTED)
    trainer, train, valid = _trainer(tiny_data, tmp_path, epochs=len(SCRIPTED))
    rates = []
    original = trainer._apply_plateau_factor

    def record():
        original()
        rates.append(trainer.optimizer.param_groups[0]["lr"])

    trainer._apply_plateau_factor = record
    trainer.fit(train, valid, saved=True)
    # 0.10 best; 0.05 x0.5; 0.05 x0.25; 0.20 new best, keeps x0.25; 0.10 x0.125
    assert rates == pytest.approx([0.004, 0.002, 0.001, 0.001, 0.0005])

    # the checkpoint holds the best epoch (3): its history gives x0.25 again
    resumed, *_ = _trainer(tiny_data, tmp_path / "other", epochs=len(SCRIPTED))
    resumed.resume_checkpoint(trainer.saved_model_file)
    assert resumed._lr_factor == pytest.approx(0.25)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_warmup_schedule_is_multiplied_too(tiny_data, tmp_path, monkeypatch):
    _script_validation(monkeypatch, [0.1, 0.0, 0.0])
    trainer, train, valid = _trainer(tiny_data, tmp_path, epochs=3, warmup_epochs=0.5)
    step_rates = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        step_rates.append(trainer.optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    trainer.fit(train, valid, saved=False)
    per_epoch = len(train)
    warm = (per_epoch + 1) // 2  # ceil(0.5 x steps)
    assert step_rates[0] == pytest.approx(0.004 / warm)  # the warm-up's first step
    assert step_rates[per_epoch:2 * per_epoch] == pytest.approx([0.004] * per_epoch)
    # after epoch 1's validation (no new best) the schedule's rate is halved at every step
    assert step_rates[2 * per_epoch:] == pytest.approx([0.002] * per_epoch)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)  # after epoch 2's


def test_a_tie_is_a_new_best_for_the_plateau_and_the_reported_best_epoch(
    tiny_data, tmp_path, monkeypatch
):
    """RecBole's early stopping saves a checkpoint on a tie: best_epoch names that checkpoint,
    and the plateau counts from it (no halving after the tie)."""
    _script_validation(monkeypatch, [0.10, 0.05, 0.10, 0.08])
    trainer, train, valid = _trainer(tiny_data, tmp_path, epochs=4, lr_plateau_patience=2)
    trainer.fit(train, valid, saved=True)
    assert trainer.best_epoch == 2
    assert checkpoint.load(trainer.saved_model_file)["epoch"] == 2
    assert trainer._lr_factor == 1.0  # one validation since the tie, patience 2
