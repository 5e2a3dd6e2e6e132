"""tune: never evaluates the test set, exit 3 when every trial diverges, direction from
valid_metric_bigger, --out checked before any trial, an example space file (issue 22)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from _robust import one_error
from conftest import ROOT, fast_config

from recbole_sasrec_ext.apps import quick_start, tune
from recbole_sasrec_ext.common.errors import TrainingDivergedError

SPACE = "learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n"


def _space(tmp: Path) -> str:
    (tmp / "space.yaml").write_text(SPACE)
    return str(tmp / "space.yaml")


def test_a_trial_never_evaluates_the_test_set(tiny_data, tmp_path, capsys, monkeypatch):
    from recbole_sasrec_ext.training.trainer import PluginTrainer

    phases = []
    evaluate = PluginTrainer.evaluate

    def spy(self, eval_data, *args, **kwargs):
        phases.append(id(eval_data))
        return evaluate(self, eval_data, *args, **kwargs)

    seen_test = []
    real_build = quick_start.build

    def build(config):
        built = real_build(config)
        seen_test.append(id(built[3]))  # the test loader
        return built

    monkeypatch.setattr(PluginTrainer, "evaluate", spy)
    monkeypatch.setattr(quick_start, "build", build)
    config = {k: str(v) for k, v in fast_config(tiny_data, epochs=2).items()
              if k != "embedding_size"}  # not a key of SASRec: an error on the command line
    argv = ["--dataset", "tiny", "--space", _space(tmp_path), "--trials", "1", "--out", "out",
            *(f"--{k}={v}" for k, v in config.items())]
    assert tune.main(argv) == 0
    out, err = capsys.readouterr()
    assert "test" not in (out + err).lower()
    assert seen_test and seen_test[0] not in phases  # evaluate never got the test loader
    assert len(phases) == 2  # one validation per epoch


def test_every_trial_diverging_exits_3(tmp_path, capsys, monkeypatch):
    def diverge(*args, **kwargs):
        raise TrainingDivergedError(1, float("nan"))

    monkeypatch.setattr(quick_start, "run", diverge)
    code = tune.main(["--space", _space(tmp_path), "--trials", "3", "--out", "out"])
    out, err = capsys.readouterr()
    one_error(code, err, "every trial diverged (3 trials)", want_code=3)
    assert not (tmp_path / "out" / "best.yaml").exists()


def _fake_run(scores):
    scores = iter(scores)

    def run(*args, **kwargs):
        assert kwargs.get("test") is False
        return SimpleNamespace(best_valid_score=next(scores), epochs=1, train_seconds=0.1)

    return run


@pytest.mark.parametrize("bigger, best", [(True, 1), (False, 2)])
def test_direction_follows_valid_metric_bigger(tmp_path, monkeypatch, bigger, best):
    monkeypatch.setattr(quick_start, "run", _fake_run([0.5, 0.9, 0.1]))
    result = tune.tune("SASRec", "ml-100k", tune.read_space(_space(tmp_path)), 3,
                       config_dict={"valid_metric_bigger": bigger})
    assert result.best.number == best


def test_out_a_file_is_an_error_before_any_trial(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(quick_start, "run", pytest.fail)
    (tmp_path / "taken").write_text("a file")
    code = tune.main(["--space", _space(tmp_path), "--trials", "1", "--out", "taken"])
    one_error(code, capsys.readouterr().err, "--out = 'taken' is not allowed: it is a file")


def test_the_example_space_file_is_valid():
    space = tune.read_space(ROOT / "properties" / "tune" / "sasrec.yaml")
    assert {d.key for d in space} >= {"learning_rate", "n_layers", "loss_type"}
