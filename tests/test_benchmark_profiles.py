"""Suite profiles (run budgets), how each run stopped, per-user paired tests in the report, and a
user's own model class in a suite."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, tiny_rows, write_inter
from test_benchmark import calls_of, kill_hung_fakes, make_fake, read_csv, write_suite

from recbole_sasrec_ext.benchmark import cli, results, significance
from recbole_sasrec_ext.benchmark.report import write_report
from recbole_sasrec_ext.benchmark.runner import run_suite
from recbole_sasrec_ext.benchmark.suite import load_suite

USER_MODELS = ROOT / "tests" / "user_models"

PROFILES = """\
profiles:
  small:
    timeout_s: 7
    notes: [Small budget.]
    common: {eval_batch_size: 64}
    datasets: {toy: {MAX_ITEM_LIST_LENGTH: 10}}
    models:
      RKSA: {epochs: 1, per_dataset: {toy: {learning_rate: 0.01}}}
  large: {}
"""


def test_profile_layers_merge_last_and_set_timeout_and_notes(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["SASRec", "RKSA"], [1], extra=PROFILES))
    small = suite.with_profile("small")
    rksa, sasrec = small.overrides("RKSA", "toy"), small.overrides("SASRec", "toy")
    assert (rksa["epochs"], rksa["learning_rate"], rksa["MAX_ITEM_LIST_LENGTH"]) == (1, 0.01, 10)
    assert (sasrec["epochs"], sasrec["eval_batch_size"]) == (3, 64)  # the suite's, the profile's
    assert (small.timeout_s, small.notes) == (7.0, ("Fake note.", "Small budget."))
    large = suite.with_profile("large")
    assert large.timeout_s == 30.0 and large.overrides("RKSA", "toy")["epochs"] == 3
    # the profile is part of the resume key even where the overrides are equal
    assert large.runs()[0].key != load_suite(
        write_suite(tmp_path / "t.yaml", ["SASRec"], [1])
    ).runs()[0].key
    assert (large.runs()[0].profile == "large"
            and large.runs()[0].log_name == "SASRec-toy-1-large.log")


BAD_PROFILES = {
    "unknown profile key": ("profiles:\n  cpu: {epochs: 3}\n", "profiles.cpu.epochs: unknown key"),
    "model not in suite": ("profiles:\n  cpu: {models: {GRU4Rec: {epochs: 3}}}\n",
                           "profiles.cpu.models.GRU4Rec: not one of the suite's models"),
    "bad override": ("profiles:\n  cpu: {common: {epoch: 3}}\n",
                     "profiles.cpu.common: unknown config key 'epoch': did you mean 'epochs'?"),
    "bad timeout": ("profiles:\n  cpu: {timeout_s: 0}\n",
                    "profiles.cpu.timeout_s: must be a positive"),
    "class in profile": ("profiles:\n  cpu: {models: {SASRec: {class: 'a:B'}}}\n",
                         "profiles.cpu.models.SASRec.class: a profile cannot change"),
    "class not importable": ("  Mine: {class: 'no_such_module_x:Model'}\n",
                             "models.Mine.class: model 'no_such_module_x:Model': cannot import"),
    "class not a model": ("  Mine: {class: 'tiny_model:NotAModel'}\n",
                          "models.Mine.class: model 'tiny_model:NotAModel': not a subclass of "
                          "RecBole's AbstractRecommender in tiny_model"),
    "class not a path": ("  Mine: {class: TinyModel}\n",
                         "models.Mine.class: must be an import path 'package.module:Class'"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_bad_profile_or_class_exits_2_naming_file_and_key(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(USER_MODELS))
    addition, expected = BAD_PROFILES[case]
    path = write_suite(tmp_path / "bad.yaml", ["SASRec"], [1], extra=addition)
    assert cli.main([str(path), "--out", str(tmp_path / "out"), "--profile", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and expected in err, err
    assert not (tmp_path / "out").exists()


def test_profile_is_required_when_the_suite_has_profiles(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write_suite(tmp_path / "s.yaml", ["SASRec", "RKSA"], [1], extra=PROFILES)
    assert cli.main([str(path), "--out", str(tmp_path / "out")]) == 2
    assert "profiles: choose a run budget with --profile (small, large)" in capsys.readouterr().err
    assert cli.main([str(path), "--out", str(tmp_path / "out"), "--profile", "gpu"]) == 2
    assert "profiles: no profile 'gpu' (the suite has small, large)" in capsys.readouterr().err
    plain = write_suite(tmp_path / "p.yaml", ["SASRec"], [1])
    assert cli.main([str(plain), "--out", str(tmp_path / "out"), "--profile", "cpu"]) == 2
    assert "no profile 'cpu' (the suite has none)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_rows_record_profile_and_how_each_run_stopped(tmp_path: Path) -> None:
    fake = make_fake(tmp_path / "fake", capped=("RKSA",))
    try:
        suite = load_suite(
            write_suite(tmp_path / "s.yaml", ["SASRec", "RKSA", "Slow"], [1], extra=PROFILES)
        ).with_profile("small")
        out = tmp_path / "out"
        run_suite(suite, out, command_prefix=fake["prefix"], stream=io.StringIO())
    finally:
        kill_hung_fakes(fake)
    rows = {r["model"]: r for r in read_csv(out / "results.csv")}
    assert {m: (r["profile"], r["stopped_by"]) for m, r in rows.items()} == {
        "SASRec": ("small", "early_stopping"),
        "RKSA": ("small", "epoch_cap"),
        "Slow": ("small", "timeout"),
    }
    assert rows["Slow"]["error"] == "timeout after 7 s"
    assert "--epochs=1" in calls_of(fake)[1] or "RKSA" in calls_of(fake)[1]
    write_report(out)
    report = (out / "results.md").read_text()
    assert "## toy (protocol: uni100, profile: small)" in report
    assert "| SASRec | 1 | 0.5000 | 0.3000 | early stopping | 3 |" in report
    assert "| RKSA ‡ | 1 | **0.5200** | **0.3200** | epoch cap (1 epoch) | 1 |" in report
    assert "‡ did not end by early stopping (see *stopped by*)" in report
    assert "- Small budget." in report


def test_old_results_are_migrated_when_read(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text(
        "model,dataset,seed,protocol,status,error,test_ndcg@10,epochs,config_hash,overrides\n"
        'SASRec,toy,1,full,ok,,0.3,5,aaa,"{""epochs"": 9}"\n'
        'Pop,toy,1,full,ok,,0.1,9,bbb,"{""epochs"": 9}"\n'
        "GRU4Rec,toy,1,full,ok,,0.2,5,ccc,{}\n"
    )
    rows = results.read_rows(out / "results.csv")
    assert [(r["profile"], r["stopped_by"]) for r in rows] == [
        ("", "early_stopping"), ("", "epoch_cap"), ("", "")  # no cap known: not inferred
    ]
    write_report(out)
    report = (out / "results.md").read_text()
    assert "| SASRec | 1 | **0.3000** | early stopping | 5 |" in report
    assert "| Pop ‡ | 1 | 0.1000 | epoch cap (9 epochs) | 9 |" in report
    assert "| GRU4Rec ‡ | 1 | 0.2000 | not recorded | 5 |" in report
    results.write_rows(out / "results.csv", rows)


def test_a_one_pass_model_is_not_marked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text(
        "model,dataset,seed,protocol,profile,status,stopped_by,error,test_ndcg@10,epochs,config_hash,"
        "overrides\n"
        'SASRec,toy,1,full,cpu,ok,early_stopping,,0.3,5,aaa,"{""epochs"": 9}"\n'
        'Pop,toy,1,full,cpu,ok,one_pass,,0.1,1,bbb,"{""epochs"": 1}"\n'
    )
    write_report(out)
    report = (out / "results.md").read_text()
    assert "| Pop | 1 | 0.1000 | one pass (nothing to iterate) | 1 |" in report
    assert "‡" not in report
    assert ("profile" in read_csv(out / "results.csv")[0]
            and "stopped_by" in read_csv(out / "results.csv")[0])


def _per_user_table(rng: np.random.Generator) -> tuple[dict, dict[str, np.ndarray]]:
    users = [str(u) for u in range(1, 61)]
    ref = rng.random(60).round(3)
    values = {
        "SASRec": ref,
        "RKSA": (ref + 0.2 * rng.random(60)).round(3),  # better for every user
        "Pop": (ref - 0.05 + 0.1 * rng.random(60)).round(3),  # noise around the reference
    }
    table = {f"{m}/toy/1": {"users": users, "ndcg@10": v.tolist()} for m, v in values.items()}
    return table, values


def test_report_shows_per_user_paired_tests_for_one_seed(tmp_path: Path) -> None:
    table, values = _per_user_table(np.random.default_rng(1))
    fake = make_fake(tmp_path / "fake", per_user=table)
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["SASRec", "RKSA", "Pop"], [1]))
    out = tmp_path / "out"
    run_suite(suite, out, command_prefix=fake["prefix"], stream=io.StringIO())
    rows = {r["model"]: r for r in read_csv(out / "results.csv")}
    assert rows["RKSA"]["per_user"].startswith("per_user/RKSA-toy-1-")
    assert (out / rows["RKSA"]["per_user"]).is_file()
    write_report(out)
    report = (out / "results.md").read_text()
    expected = {}
    for model in ("RKSA", "Pop"):
        v = values[model].astype(np.float32).astype(np.float64)
        r = values["SASRec"].astype(np.float32).astype(np.float64)
        expected[model] = significance.paired_user_test(v, r)
    p_t = significance.holm([expected["RKSA"].p_t, expected["Pop"].p_t])
    p_w = significance.holm([expected["RKSA"].p_wilcoxon, expected["Pop"].p_wilcoxon])
    assert "Per-user paired tests against SASRec on each test user's ndcg@10" in report
    for i, model in enumerate(("RKSA", "Pop")):
        test = expected[model]
        line = (
            f"| {model} | 60 | {test.n_nonzero} | {test.mean:.4f} | {test.reference_mean:.4f} | "
            f"{test.delta_pct:+.1f}% | {significance.format_p(p_t[i])} | "
            f"{significance.format_p(p_w[i])} |"
        )
        assert line in report, report
    assert "| RKSA | 60 | 60 |" in report and "< 1e-4 †" in report  # better for every user


def test_a_users_own_model_class_runs_through_the_pipeline(tiny_data: Path, tmp_path: Path) -> None:
    """A suite entry ``class: tiny_model:TinyModel`` (tests/user_models) trains and is tested
    against the plugin's SASRec, per user, in real runs on the tiny data set."""
    write_inter(tiny_data, "tiny", tiny_rows(n_users=60, seed=3))
    suite = tmp_path / "mine.yaml"
    suite.write_text(
        f"""\
description: My model against SASRec.
timeout_s: 300
common:
  data_path: {tiny_data}
  eval_args: {{split: {{LS: valid_and_test}}, order: TO, mode: full}}
  metrics: [Hit, NDCG]
  topk: [10]
  valid_metric: NDCG@10
  epochs: 2
  MAX_ITEM_LIST_LENGTH: 10
  train_batch_size: 16
  show_progress: false
datasets:
  tiny: {{}}
models:
  SASRec: {{hidden_size: 16, inner_size: 16}}
  Mine:
    class: tiny_model:TinyModel
    tiny_width: 8
    train_neg_sample_args: ~
"""
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(USER_MODELS)]))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "recbole_sasrec_ext.benchmark", str(suite), "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["model"]: r for r in read_csv(out / "results.csv")}
    assert rows["Mine"]["status"] == "ok", rows["Mine"]["error"]
    assert rows["Mine"]["implementation"] == "tiny_model.TinyModel"
    assert rows["Mine"]["stopped_by"] == "epoch_cap" and rows["Mine"]["per_user"]
    assert "--model tiny_model:TinyModel" in (out / "logs" / "Mine-tiny-2020.log").read_text()
    report = (out / "results.md").read_text()
    assert "| Mine ‡ | 1 |" in report and "Per-user paired tests against SASRec on each" in report
    assert "\n| Mine | " in report  # its row of the per-user tests
