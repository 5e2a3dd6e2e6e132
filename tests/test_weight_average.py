"""``weight_ema_epochs``: the moving average's values, its swap in and out of the model, and the
trainer validating, saving and resuming with it (the resume after a kill: tests/test_resume.py)."""

import pytest
import torch
from conftest import fast_config

from recbole_sasrec_ext import Config, PluginError
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.config.settings_hash import settings_hash
from recbole_sasrec_ext.training import checkpoint
from recbole_sasrec_ext.training.trainer import PluginTrainer
from recbole_sasrec_ext.training.weight_average import WeightAverage


def _scalar_model(value: float) -> torch.nn.Module:
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def test_average_follows_the_formula_by_hand():
    model = _scalar_model(0.0)
    ema = WeightAverage(model, horizon_epochs=2.0)  # 4 steps per epoch: d = 1 - 1/8 = 0.875
    expected, steps = 0.0, 0
    for w in [float(v % 7) for v in range(70)]:  # the warm-up ends at step 62: (1+62)/72 = 0.875
        with torch.no_grad():
            model.weight.fill_(w)
        d = min(0.875, (1 + steps) / (10 + steps))  # warm-up 0.1, 0.18, 0.25, ..., then 0.875
        expected = d * expected + (1 - d) * w
        ema.update(steps_per_epoch=4)
        steps += 1
        assert ema.average["weight"].item() == pytest.approx(expected, rel=1e-6)
    assert ema.decay(4) == 0.875  # the warm-up is over
    assert ema.steps == 70


def test_applied_swaps_the_average_in_and_restores_the_raw_weights():
    model = _scalar_model(1.0)
    ema = WeightAverage(model, horizon_epochs=1.0)
    with torch.no_grad():
        model.weight.fill_(5.0)
    with ema.applied():
        assert model.weight.item() == 1.0
    assert model.weight.item() == 5.0
    with pytest.raises(RuntimeError), ema.applied():
        raise RuntimeError("evaluation failed")
    assert model.weight.item() == 5.0  # restored after an error too


def test_zero_horizon_is_rejected_and_negative_config_is_a_config_error(tiny_data):
    with pytest.raises(ValueError):
        WeightAverage(_scalar_model(0.0), 0.0)
    with pytest.raises(PluginError, match="'weight_ema_epochs' = -1.0 is not allowed"):
        Config("SASRec", "tiny", config_dict=fast_config(tiny_data, weight_ema_epochs=-1.0))


def _trainer(tiny_data, **extra):
    config = Config("SASRec", "tiny", config_dict=fast_config(tiny_data, **extra))
    _, train, valid, _, model = build(config)
    return PluginTrainer(config, model), train, valid


def test_validation_and_checkpoint_use_the_average_training_the_raw_weights(tiny_data, tmp_path):
    trainer, train, valid = _trainer(tiny_data, weight_ema_epochs=3.0, epochs=2,
                                     checkpoint_dir=str(tmp_path))
    trainer.fit(train, valid, saved=True)
    raw = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    state = checkpoint.load(trainer.saved_model_file)
    average = trainer._ema.average
    saved_epoch_is_last = state["epoch"] == 1
    name = "item_embedding.weight" if "item_embedding.weight" in raw else next(iter(average))
    assert not torch.equal(state["state_dict"][name], state["weight_ema"]["raw"][name])
    if saved_epoch_is_last:  # the checkpoint holds the average and the raw weights of that step
        assert torch.equal(state["state_dict"][name], average[name])
        assert torch.equal(state["weight_ema"]["raw"][name], raw[name])
    # the validation score recorded for the saved epoch is the averaged weights' score
    best = next(h["valid_score"] for h in trainer.history if h["epoch"] == state["epoch"])
    checkpoint.load_weights(trainer.model, state)
    trainer._ema = None  # score the loaded weights as they are
    score, _ = trainer._valid_epoch(valid)
    assert score == pytest.approx(best)


def test_off_by_default_and_checkpoint_without_average_is_refused_on_resume(tiny_data, tmp_path):
    plain, train, valid = _trainer(tiny_data, epochs=1, checkpoint_dir=str(tmp_path))
    assert plain._ema is None
    plain.fit(train, valid, saved=True)
    assert "weight_ema" not in checkpoint.load(plain.saved_model_file)
    averaged, *_ = _trainer(tiny_data, weight_ema_epochs=1.0, checkpoint_dir=str(tmp_path))
    with pytest.raises(PluginError, match="weight_ema_epochs is set but the checkpoint"):
        averaged.resume_checkpoint(plain.saved_model_file)


def test_settings_hash_of_a_run_without_the_key_is_kept_at_zero(tiny_data):
    """Rows hashed before ``weight_ema_epochs`` existed behave as 0: at 0 the hash is theirs."""
    config = Config("SASRec", "tiny", config_dict=fast_config(tiny_data))
    at_zero = settings_hash(config)
    del config.final_config_dict["weight_ema_epochs"]  # the settings of the code before the key
    assert settings_hash(config) == at_zero
    averaged = Config("SASRec", "tiny", config_dict=fast_config(tiny_data, weight_ema_epochs=2.0))
    assert settings_hash(averaged) != at_zero


def test_evaluating_the_current_weights_scores_the_average_and_keeps_the_raw(tiny_data, tmp_path):
    trainer, train, valid = _trainer(tiny_data, weight_ema_epochs=3.0, epochs=2,
                                     checkpoint_dir=str(tmp_path))
    trainer.fit(train, valid, saved=False)
    raw = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    scored = dict(trainer.evaluate(valid, load_best_model=False))
    assert all(torch.equal(v, raw[k]) for k, v in trainer.model.state_dict().items())
    ema, trainer._ema = trainer._ema, None
    with ema.applied():  # the average put in by hand, scored as it is
        by_hand = dict(trainer.evaluate(valid, load_best_model=False))
    assert scored == by_hand
