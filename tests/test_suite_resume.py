"""A suite killed in the middle of a run continues that run from its last checkpoint when it is
started again (not from epoch 0), skips finished runs, and ends with the same results as a suite
that ran in one go."""

from __future__ import annotations

import io
import os
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, tiny_rows, write_inter

from recbole_sasrec_ext.benchmark import results
from recbole_sasrec_ext.benchmark.results import Status
from recbole_sasrec_ext.benchmark.runner import CHECKPOINTS_DIR, newest_checkpoint, run_suite
from recbole_sasrec_ext.benchmark.suite import load_suite

#: The first attempt of the interrupted run is SIGKILLed when this (0-based) epoch starts.
KILL_AT_EPOCH = 4

#: A run command that SIGKILLs itself at epoch ``argv[1]`` once (while ``argv[2]`` does not
#: exist; it creates it), logging every epoch it trains to ``argv[3]``.
_CHILD = """
import os, signal, sys
from pathlib import Path
from recbole_sasrec_ext.apps.cli import main
from recbole_sasrec_ext.training.trainer import PluginTrainer
kill_at, marker, trained = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
train_epoch = PluginTrainer._train_epoch
def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
    if epoch_idx == kill_at and not marker.exists():
        marker.write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    with trained.open("a") as log:
        log.write(f"{self.config['model']} {epoch_idx}\\n")
    return train_epoch(self, train_data, epoch_idx, *args, **kwargs)
PluginTrainer._train_epoch = _train_epoch
sys.exit(main(sys.argv[4:]))
"""


def _suite(tmp_path: Path) -> Path:
    data = write_inter(tmp_path / "data", "tiny", tiny_rows(n_users=50, max_len=20))
    path = tmp_path / "tiny-suite.yaml"
    path.write_text(textwrap.dedent(f"""\
        description: Two models on a tiny data set, killed and resumed.
        timeout_s: 600
        seeds: [7]
        common:
          data_path: {data}
          eval_args: {{split: {{LS: valid_and_test}}, order: TO, mode: full}}
          filter_seen: true
          metrics: [Hit, NDCG]
          topk: [5]
          valid_metric: NDCG@5
          epochs: 8
          stopping_step: 100
          show_progress: false
          train_batch_size: 16
          MAX_ITEM_LIST_LENGTH: 10
        datasets:
          tiny: {{}}
        models:
          Pop: {{epochs: 1, train_neg_sample_args: ~}}
          SASRec: {{hidden_size: 16, inner_size: 16}}
        """))
    return path


def _prefix(tmp_path: Path, name: str) -> list[str]:
    return [sys.executable, "-c", _CHILD, str(KILL_AT_EPOCH), str(tmp_path / f"{name}.killed"),
            str(tmp_path / f"{name}.trained")]


def _trained(tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / f"{name}.trained"
    return path.read_text().splitlines() if path.exists() else []


def _outcomes(out: Path) -> dict[str, tuple]:
    """model -> (status, test metrics, every validation's epoch and metrics) as recorded."""
    rows = results.read_rows(out / results.CSV_NAME)
    validations = {
        h.model: [(v.epoch, v.valid_score, v.valid_result) for v in h.valid_history]
        for h in results.read_histories(out / results.HISTORIES_NAME)
    }
    return {
        r["model"]: (r["status"], {k: v for k, v in r.items() if k.startswith("test_")},
                     validations.get(r["model"]))
        for r in rows
    }


@pytest.fixture()
def in_root(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def test_killed_suite_resumes_the_unfinished_run_from_its_checkpoint(tmp_path, in_root):
    suite = load_suite(_suite(tmp_path))
    # one go: the marker exists from the start, so nothing is killed
    (tmp_path / "whole.killed").write_text("not this time")
    whole = run_suite(suite, tmp_path / "whole", command_prefix=_prefix(tmp_path, "whole"),
                      stream=io.StringIO())
    assert whole.failed == 0
    assert _trained(tmp_path, "whole").count("SASRec 0") == 1

    # first piece: SASRec is killed when its epoch KILL_AT_EPOCH starts
    out = tmp_path / "pieces"
    first = run_suite(suite, out, command_prefix=_prefix(tmp_path, "pieces"),
                      stream=io.StringIO())
    assert first.failed == 1
    status = {r["model"]: r["status"] for r in first.rows}
    assert status == {"Pop": Status.OK.value, "SASRec": Status.FAILED.value}
    folder = out / CHECKPOINTS_DIR / next(r for r in suite.runs() if r.model == "SASRec").run_name
    assert newest_checkpoint(folder) is not None, "the killed run left no checkpoint"

    # second piece: Pop is skipped, SASRec continues after its last checkpoint
    before = len(_trained(tmp_path, "pieces"))
    second = run_suite(suite, out, command_prefix=_prefix(tmp_path, "pieces"),
                       stream=io.StringIO())
    assert (second.ran, second.skipped, second.failed) == (1, 1, 0)
    resumed = _trained(tmp_path, "pieces")[before:]
    assert resumed and all(line.startswith("SASRec ") for line in resumed)
    assert int(resumed[0].split()[1]) > 0, "the run started again from epoch 0"
    assert int(resumed[-1].split()[1]) == 7

    assert _outcomes(out) == _outcomes(tmp_path / "whole")


def test_newest_checkpoint_is_the_last_written(tmp_path):
    assert newest_checkpoint(tmp_path / "none") is None
    older, newer = tmp_path / "b.pth", tmp_path / "a.pth"
    older.write_bytes(b"1")
    newer.write_bytes(b"2")
    os.utime(older, ns=(1_000_000_000, 1_000_000_000))
    os.utime(newer, ns=(2_000_000_000, 2_000_000_000))
    assert newest_checkpoint(tmp_path) == newer


def test_a_row_made_before_a_default_changed_is_run_again(tmp_path, in_root):
    """A finished row whose ``settings_hash`` differs from what its command resolves to now (a
    default changed since) is trained again from epoch 0; a row without a hash (made before runs
    reported one) and a current row are skipped."""
    from recbole_sasrec_ext.benchmark.settings_probe import probe

    suite = load_suite(_suite(tmp_path))
    (tmp_path / "run.killed").write_text("never killed")
    out = tmp_path / "out"
    run_suite(suite, out, command_prefix=_prefix(tmp_path, "run"), stream=io.StringIO())
    rows = {r["model"]: r for r in results.read_rows(out / results.CSV_NAME)}
    specs = {spec.model: spec for spec in suite.runs()}
    assert [rows[m]["settings_hash"] for m in ("Pop", "SASRec")] == probe(
        [specs["Pop"].args(), specs["SASRec"].args()])  # the run and the probe agree
    assert len(rows["SASRec"]["settings_hash"]) == 12
    assert rows["Pop"]["settings_hash"] != rows["SASRec"]["settings_hash"]

    stream = io.StringIO()
    again = run_suite(suite, out, command_prefix=_prefix(tmp_path, "run"), stream=stream)
    assert (again.ran, again.skipped) == (0, 2), stream.getvalue()

    current = rows["SASRec"]["settings_hash"]
    rows["SASRec"]["settings_hash"] = "0123456789ab"  # as if made with another default
    rows["Pop"]["settings_hash"] = ""  # as if made before runs reported a hash
    results.write_rows(out / results.CSV_NAME, list(rows.values()))
    trained = len(_trained(tmp_path, "run"))
    stream = io.StringIO()
    third = run_suite(suite, out, command_prefix=_prefix(tmp_path, "run"), stream=stream)
    assert (third.ran, third.skipped, third.failed) == (1, 1, 0)
    assert (f"SASRec on tiny seed 7: its row was made with other settings (settings hash "
            f"0123456789ab, now {current}: a default changed since); running it again"
            ) in stream.getvalue()
    assert _trained(tmp_path, "run")[trained:][0] == "SASRec 0"  # from scratch, not resumed
    rows = {r["model"]: r for r in results.read_rows(out / results.CSV_NAME)}
    assert rows["SASRec"]["settings_hash"] == current and rows["Pop"]["settings_hash"] == ""
