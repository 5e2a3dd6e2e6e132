"""The console of a run: short by default, RecBole's log with --verbose, everything in a log file
unique to the run, TensorBoard events per run, unactionable warnings in the log only."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

from conftest import ROOT, fast_config

from recbole_sasrec_ext import run
from recbole_sasrec_ext.training.console import QuietConsole, plain


def _cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "run_recbole.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=600)


def test_default_console_is_short_and_the_log_file_has_everything(tiny_data, tmp_path):
    args = ["--dataset", "tiny", f"--data_path={tiny_data}", "--epochs=3",
            "--MAX_ITEM_LIST_LENGTH=10"]
    proc = _cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    epoch_lines = [ln for ln in lines if ln.startswith("epoch ")]
    # one line per epoch: training loss and the validation result together
    assert len(epoch_lines) == 3 and all(
        "train loss" in ln and "| valid: " in ln for ln in epoch_lines
    )
    test_line = next(ln for ln in lines if ln.startswith("test result"))
    assert re.fullmatch(
        r"test result: \{'hit@10': [0-9.]+, 'ndcg@10': [0-9.]+, 'mrr@10': [0-9.]+\}", test_line
    ), test_line
    assert len(lines) < 100 and "Parameters" not in proc.stderr  # no config dump
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    log = Path(tmp_path / summary["log_file"]).read_text()
    assert "General Hyper Parameters" in log and "epoch 2 training" in log  # the full log
    assert "users: 40, items: 30" in log  # the data set summary reports the data


def test_verbose_restores_recbole_log(tiny_data, capfd):
    run("SASRec", "tiny", config_dict=fast_config(tiny_data, state="INFO", epochs=1), verbose=True)
    err = capfd.readouterr().err
    assert "General Hyper Parameters" in err and "valid result" in err


def test_each_run_has_its_own_log_file_and_tensorboard_folder(tiny_data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = fast_config(tiny_data, epochs=2)
    first, second = (run("SASRec", "tiny", config_dict=config),
                     run("SASRec", "tiny", config_dict=config))
    assert first.log_file != second.log_file
    assert first.tensorboard_dir != second.tensorboard_dir
    for summary in (first, second):
        assert Path(summary.log_file).is_file()
        events = EventAccumulator(summary.tensorboard_dir)
        events.Reload()
        tags = events.Tags()["scalars"]
        assert {"Loss/Train", "Valid/ndcg@10", "Valid/hit@10"} <= set(tags)
        assert [e.step for e in events.Scalars("Loss/Train")] == [0, 1]


def test_quiet_console_sends_unactionable_warnings_to_the_log_only(tmp_path):
    import io

    stream = io.StringIO()
    handler = QuietConsole(stream)
    logger = logging.getLogger("py.warnings")
    logger.addHandler(handler)
    try:
        logging.captureWarnings(True)
        warnings.warn_explicit("`torch.cuda.amp.GradScaler(args...)` is deprecated",
                               FutureWarning, "x.py", 1)
        warnings.warn_explicit("The given NumPy array is not writable", UserWarning, "y.py", 2)
        warnings.warn_explicit("something you can fix", UserWarning, "z.py", 3)
    finally:
        logging.captureWarnings(False)
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "warning: z.py:3: UserWarning: something you can fix"
    ]


def test_plain_strips_colours():
    assert plain("\x1b[1;32mepoch 1 training\x1b[0m [") == "epoch 1 training ["


def test_quiet_console_after_20_epochs_shows_every_10th_and_new_bests():
    import io

    stream = io.StringIO()
    handler = QuietConsole(stream)
    scores = [0.1] * 20 + [0.05] * 5 + [0.2] + [0.05] * 10  # a new best at epoch 25
    for epoch, score in enumerate(scores):
        for message in (f"\x1b[1;32mepoch {epoch} training\x1b[0m [time: 1.00s, train loss: 2.0]",
                        f"epoch {epoch} evaluating [time: 0.10s, valid_score: {score:f}]",
                        f"valid result: \nndcg@10 : {score}"):
            handler.emit(logging.LogRecord("root", logging.INFO, "x", 1, message, None, None))
    handler.close()
    lines = stream.getvalue().splitlines()
    assert [int(ln.split()[1]) for ln in lines] == [*range(20), 25, 29]
    assert lines[0] == "epoch 0 training [time: 1.00s, train loss: 2.0] | valid: ndcg@10 : 0.1"
    assert lines[20].endswith("ndcg@10 : 0.2 *") and not lines[21].endswith("*")


def test_quiet_console_writes_to_the_stderr_of_the_moment(monkeypatch):
    """A console made while another stream was sys.stderr (a closed pytest capture, a caller's
    redirect) writes to today's sys.stderr, not to the closed one."""
    import io

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    console = QuietConsole()
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    console.emit(logging.makeLogRecord({"msg": "boom", "levelno": logging.WARNING,
                                        "levelname": "WARNING", "name": "x"}))
    assert second.getvalue() == "warning: boom\n"
