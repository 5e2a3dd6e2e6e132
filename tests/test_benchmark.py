"""Tests of the benchmark command with a fake single-run command (no model is trained)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from scipy import stats

from recbole_sasrec_ext.benchmark import cli, results
from recbole_sasrec_ext.benchmark.aggregate import build_tables, paired_test
from recbole_sasrec_ext.benchmark.report import write_report
from recbole_sasrec_ext.benchmark.runner import (
    RUN_CMD_ENV,
    command_text,
    default_command_prefix,
    run_suite,
)
from recbole_sasrec_ext.benchmark.suite import (
    SuiteError,
    available_suites,
    default_data_root,
    find_suite,
    format_value,
    load_suite,
)
from recbole_sasrec_ext.common import atomic_write

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The fake single run: `python fake_run.py <config.json>` + the real argv; the config says where to
# record calls and which models crash or hang.
FAKE_RUN = textwrap.dedent(
    """
    import json, os, sys, time
    from recbole_sasrec_ext.contract.summary import RunSummary
    config = json.load(open(sys.argv[1]))
    args = sys.argv[2:]
    model, dataset = args[args.index("--model") + 1], args[args.index("--dataset") + 1]
    opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    seed = int(opts["seed"])
    with open(config["calls"], "a") as f:
        f.write(f"{model} {dataset} {seed} {os.getcwd()}\\n")
    if "threads" in config:  # the thread count the runner gave the run
        with open(config["threads"], "a") as f:
            f.write(f"{model} {seed} {os.environ.get('OMP_NUM_THREADS', '-')}\\n")
    print("epoch 0 training [time: 0.1s, train loss: 1.0]")
    if model in config["crash"]:
        print("Traceback (most recent call last): ...", file=sys.stderr)
        print("error: CUDA out of memory", file=sys.stderr)
        print("FutureWarning: a warning printed at exit", file=sys.stderr)
        sys.exit(1)
    if model in config["slow"]:
        with open(config["pids"], "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(60)
    if model == "NoJson":
        print("done, but no result")
        sys.exit(0)
    if model == "Killed":
        os.kill(os.getpid(), 9)
    metrics = config["table"].get(f"{model}/{dataset}/{seed}", {"hit@10": 0.5, "ndcg@10": 0.25})
    history = [{"epoch": e, "train_seconds": 0.5 * (e + 1), "valid_score": 0.1 * (e + 1),
                "valid_result": {"ndcg@10": 0.1 * (e + 1)}} for e in range(3)]
    explanation = None
    if model == "RKSA":
        explanation = {"user": "7", "history": ["3", "5", "9"], "recommended": "11",
                       "attention": [0.2, 0.3, 0.5],
                       "mixture": {"co-occurrence": 0.5, "item": 0.3, "user": 0.2}}
    per_user = config.get("per_user", {}).get(f"{model}/{dataset}/{seed}")
    per_user_file = None
    if per_user is not None:  # as evaluation/per_user.py writes it
        import numpy as np
        per_user_file = opts["per_user_file"]
        os.makedirs(os.path.dirname(per_user_file), exist_ok=True)
        np.savez(per_user_file, user=np.array(per_user["users"]),
                 **{"ndcg@10": np.array(per_user["ndcg@10"], dtype=np.float32)})
    stopped_by = "epoch_cap" if model in config.get("capped", []) else "early_stopping"
    summary = RunSummary.from_dict({
        "model": model, "implementation": f"fake.{model}", "dataset": dataset, "seed": seed,
        "protocol": "uni100", "best_valid_score": 0.3, "best_valid_result": {"ndcg@10": 0.3},
        "test_result": metrics, "train_seconds": 1.5, "fit_wall_seconds": 2.0,
        "epochs": int(opts.get("epochs", 3)), "best_epoch": 2, "seconds_per_epoch": 0.5,
        "peak_memory_mb": 100.0, "valid_history": history, "config_hash": "run" + str(seed),
        "versions": {"recbole": "1.2.1", "torch": "2.13.0"}, "checkpoint": "saved/x.pth",
        "device": "cpu", "explanation": explanation, "schema_version": 1,
        "stopped_by": stopped_by, "per_user_file": per_user_file,
    }).to_dict()
    if model == "Partial":  # a summary that lost a field
        del summary["peak_memory_mb"]
    print(json.dumps(summary))
    """
)

# Hand-chosen test metrics for two seeds (see test_report_mean_std_bold_and_paired_test).
TABLE = {
    "SASRec/toy/1": {"hit@10": 0.50, "ndcg@10": 0.30},
    "SASRec/toy/2": {"hit@10": 0.56, "ndcg@10": 0.34},
    "RKSA/toy/1": {"hit@10": 0.52, "ndcg@10": 0.32},
    "RKSA/toy/2": {"hit@10": 0.60, "ndcg@10": 0.38},
}


def write_suite(
    path: Path, models: list[str], seeds: list[int], timeout_s: float = 30.0, extra: str = ""
) -> Path:
    model_lines = "\n".join(f"  {m}: {{epochs: 3}}" for m in models)
    path.write_text(
        textwrap.dedent(f"""\
        description: Fake suite for tests.
        timeout_s: {timeout_s}
        seeds: {seeds}
        common:
          eval_args: {{split: {{LS: valid_and_test}}, order: TO, mode: uni100}}
          metrics: [Hit, NDCG]
          topk: [10]
        datasets:
          toy: {{MAX_ITEM_LIST_LENGTH: 20}}
        notes:
          - Fake note.
        """)
        + f"models:\n{model_lines}\n"
        + extra
    )
    return path


def make_fake(
    folder: Path,
    crash: tuple[str, ...] = ("Crash",),
    slow: tuple[str, ...] = ("Slow",),
    capped: tuple[str, ...] = (),
    per_user: dict | None = None,
) -> dict:
    """A fake run command in ``folder``; calls are appended to ``calls.txt`` there."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "fake_run.py"
    script.write_text(FAKE_RUN)
    fake = {"calls": folder / "calls.txt", "pids": folder / "pids.txt"}
    config = folder / f"fake-{len(list(folder.glob('fake-*.json')))}.json"
    config.write_text(
        json.dumps(
            {
                "calls": str(fake["calls"]),
                "pids": str(fake["pids"]),
                "crash": list(crash),
                "slow": list(slow),
                "table": TABLE,
                "capped": list(capped),
                "per_user": per_user or {},
            }
        )
    )
    return {**fake, "prefix": [sys.executable, str(script), str(config)]}


def kill_hung_fakes(fake: dict) -> None:
    for line in fake["pids"].read_text().split() if fake["pids"].exists() else []:
        try:
            os.kill(int(line), signal.SIGKILL)  # only the fakes these tests started
        except ProcessLookupError:
            pass


@pytest.fixture()
def fake(tmp_path: Path) -> dict:
    fake = make_fake(tmp_path / "fake")
    yield fake
    kill_hung_fakes(fake)


def calls_of(fake: dict) -> list[str]:
    return fake["calls"].read_text().splitlines() if fake["calls"].exists() else []


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A suite of 4 models x 2 seeds run once: Crash fails, Slow times out. Read-only for tests."""
    tmp_path = tmp_path_factory.mktemp("finished")
    fake = make_fake(tmp_path / "fake")
    suite = load_suite(
        write_suite(
            tmp_path / "fake.yaml", ["SASRec", "RKSA", "Crash", "Slow"], [1, 2], timeout_s=1.0
        )
    )
    out, stream = tmp_path / "out", io.StringIO()
    summary = run_suite(
        suite,
        out,
        command_prefix=fake["prefix"],
        stream=stream,
        command_line="python -m recbole_sasrec_ext.benchmark fake.yaml --out out",
    )
    written = write_report(out)
    yield {
        "suite": suite,
        "out": out,
        "summary": summary,
        "progress": stream.getvalue(),
        "written": written,
        "tmp": tmp_path,
        **fake,
    }
    kill_hung_fakes(fake)


def copy_of(finished: dict, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished["out"], tmp_path / "out"))


# ----- suites ---------------------------------------------------------------------------------


def test_shipped_suites_load_and_follow_the_brief() -> None:
    assert {"quick", "paper-sasrec", "paper-rksa", "full-ranking"} <= set(available_suites())
    quick = load_suite("quick")
    assert list(quick.models) == ["SASRec", "RKSA", "GRU4Rec", "Caser", "Pop", "RecBole.SASRec"]
    assert list(quick.datasets) == ["ml-100k"] and quick.seeds == (2020,)
    assert list(quick.profiles) == ["cpu", "gpu"]
    cpu = {r.model: r for r in quick.with_profile("cpu").runs()}
    gpu = {r.model: r for r in quick.with_profile("gpu").runs()}
    assert all(r.protocol == "full" and r.profile == "cpu" for r in cpu.values())
    assert cpu["Caser"].overrides["MAX_ITEM_LIST_LENGTH"] == 5
    # no caps in either profile: every trained model early-stops within 200 epochs
    for runs in (cpu, gpu):
        assert {m: r.overrides["epochs"] for m, r in runs.items() if m != "Pop"} == dict.fromkeys(
            ["SASRec", "RKSA", "GRU4Rec", "Caser", "RecBole.SASRec"], 200
        )
    # cpu: RecBole's prefix-trained models without their padding (the same gradient)
    assert {m for m, r in cpu.items() if r.overrides.get("length_split")} == {
        "GRU4Rec", "RecBole.SASRec"}
    assert cpu["SASRec"].overrides["stopping_step"] == 10 and quick.notes
    assert quick.with_profile("cpu").timeout_s == 10800 and gpu["GRU4Rec"].key != cpu["GRU4Rec"].key

    paper = load_suite("paper-sasrec")
    ml1m, games = paper.overrides("SASRec", "ml-1m"), paper.overrides("SASRec", "games")
    assert (ml1m["MAX_ITEM_LIST_LENGTH"], ml1m["hidden_dropout_prob"]) == (200, 0.2)
    assert (games["MAX_ITEM_LIST_LENGTH"], games["hidden_dropout_prob"]) == (50, 0.5)
    assert (ml1m["hidden_size"], ml1m["n_layers"], ml1m["n_heads"]) == (50, 2, 1)
    assert (ml1m["learning_rate"], ml1m["train_batch_size"]) == (1e-3, 128)
    assert ml1m["data_path"] == str(default_data_root() / "datasets") + "/"
    assert {r.protocol for r in paper.runs()} == {"uni100"}
    assert set(paper.models) == {"SASRec", "GRU4Rec", "Caser", "Pop", "RecBole.SASRec"}

    rksa = load_suite("paper-rksa")
    assert len(rksa.runs()) == 4 * 2 * 3 and set(rksa.models) == {"SASRec", "RKSA"}
    full = load_suite("full-ranking")
    assert full.overrides("SASRec", "ml-1m")["loss_type"] == "CE"
    assert "loss_type" not in full.overrides("RKSA", "ml-1m")
    assert {r.protocol for r in full.runs()} == {"full"}


def test_find_suite_by_name_or_path(tmp_path: Path) -> None:
    found = find_suite("quick")  # the installed package's copy, or the checkout's
    assert found.name == "quick.yaml" and found.read_text() == (
        REPO / "properties" / "benchmark" / "quick.yaml"
    ).read_text()
    path = write_suite(tmp_path / "mine.yaml", ["SASRec"], [1])
    assert find_suite(str(path)) == path
    with pytest.raises(SuiteError, match="available: .*quick"):
        find_suite("no-such-suite")


def recbole_reads(text: str) -> object:
    """RecBole's own command-line value parsing (Config._convert_config_dict)."""
    try:
        value = eval(text)
        if value is not None and not isinstance(value, (str, int, float, list, tuple, dict, bool)):
            value = text
    except (NameError, SyntaxError, TypeError):
        value = {"true": True, "false": False}.get(text.lower(), text)
    return value


@pytest.mark.parametrize(
    "value",
    [
        "CE",
        "NDCG@10",
        "/abs/data path/",
        "true",
        "None",
        "1+1",
        "abs",
        None,
        True,
        0.001,
        1e-05,
        3,
        [10],
        ["Hit", "NDCG"],
        {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
    ],
)
def test_format_value_round_trips_through_recbole_parsing(value: object) -> None:
    assert recbole_reads(format_value(value)) == value


def test_relative_data_path_resolved_and_left_out_of_the_key(tmp_path: Path) -> None:
    path = write_suite(tmp_path / "s.yaml", ["SASRec"], [1])
    path.write_text(path.read_text().replace("  topk: [10]", "  topk: [10]\n  data_path: data"))
    suite = load_suite(path)
    a, b = suite.runs(data_root=tmp_path / "a")[0], suite.runs(data_root=tmp_path / "b")[0]
    assert f"--data_path={tmp_path / 'a' / 'data'}/" in a.args()
    assert a.args()[:5] == ["--model", "SASRec", "--dataset", "toy", "--seed=1"]
    assert a.config_hash == b.config_hash


def test_overrides_merge_common_dataset_model_per_dataset(tmp_path: Path) -> None:
    extra = "  Caser: {epochs: 2, MAX_ITEM_LIST_LENGTH: 5, per_dataset: {toy: {epochs: 1}}}\n"
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["SASRec"], [1], extra=extra))
    sasrec, caser = suite.overrides("SASRec", "toy"), suite.overrides("Caser", "toy")
    assert (sasrec["MAX_ITEM_LIST_LENGTH"], sasrec["epochs"]) == (20, 3)  # datasets, models
    assert (caser["MAX_ITEM_LIST_LENGTH"], caser["epochs"]) == (5, 1)  # models, per_dataset
    assert "per_dataset" not in caser and caser["topk"] == [10]  # common


@pytest.mark.parametrize(
    "command", [["python", "--x={'a': [1, 2]}", "a b", 'it"s', "$HOME", "a\\b"]]
)
def test_command_text_is_a_shell_line(command: list[str]) -> None:
    text = command_text(command)
    assert shlex.split(text) == command and "\"--x={'a': [1, 2]}\"" in text


BAD_SUITES = {
    "unknown top-level key": ("modelz:\n  SASRec: {}\n", "modelz"),
    "reserved override": ("  Pop: {seed: 3}\n", "models.Pop.seed"),
    "bad yaml": ("  Pop: {epochs: [1\n", "not valid yaml"),
    "duplicate key": ("  Pop: {epochs: 1, epochs: 2}\n", "duplicate key 'epochs'"),
    "per_dataset of an unknown data set": (
        "  Pop: {per_dataset: {ml-1m: {epochs: 1}}}\n",
        "models.Pop.per_dataset.ml-1m",
    ),
    "value with =": ("  Pop: {checkpoint_dir: 'a=b'}\n", "models.Pop.checkpoint_dir"),
    "bad seeds": ("seeds: [1, x]\n", "seeds"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_suite_exits_2_naming_file_and_key(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    addition, expected = BAD_SUITES[case]
    path = write_suite(tmp_path / "bad.yaml", ["SASRec"], [1], extra=addition)
    if case == "bad seeds":
        path.write_text(path.read_text().replace("seeds: [1]\n", ""))
    assert cli.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and expected in err
    assert not (tmp_path / "out").exists()


def test_missing_models_and_unknown_only_models_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "nomodels.yaml"
    path.write_text("datasets: {toy: {}}\n")
    assert cli.main([str(path), "--out", str(tmp_path / "out")]) == 2
    assert "models: missing" in capsys.readouterr().err
    good = write_suite(tmp_path / "good.yaml", ["SASRec"], [1])
    assert cli.main([str(good), "--out", str(tmp_path / "o"), "--only-models", "Nope"]) == 2
    assert "no model Nope" in capsys.readouterr().err


def test_dry_run_prints_the_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["quick", "--profile", "cpu", "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and "-m recbole_sasrec_ext --model SASRec --dataset ml-100k" in lines[0]
    caser = shlex.split(next(line for line in lines if "--model Caser" in line))
    assert "--MAX_ITEM_LIST_LENGTH=5" in caser and "--train_neg_sample_args=None" in caser
    assert recbole_reads(next(a for a in caser if a.startswith("--eval_args="))[12:]) == {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "mode": "full",
    }
    recbole_sasrec = next(line for line in lines if "--model RecBole.SASRec" in line)
    # the cpu profile's two training processes (one thread each, the launcher's default)
    assert " --nproc=2 " in recbole_sasrec and not recbole_sasrec.startswith("OMP_NUM_THREADS")
    assert not any(line.startswith("OMP") for line in lines if line != recbole_sasrec)
    assert not (tmp_path / "out").exists()


def test_run_command_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_CMD_ENV, raising=False)
    assert default_command_prefix() == [sys.executable, "-m", "recbole_sasrec_ext"]
    monkeypatch.setenv(RUN_CMD_ENV, "python3 '/a b/fake.py'")
    assert default_command_prefix() == ["python3", "/a b/fake.py"]


# ----- runs -----------------------------------------------------------------------------------


def test_rows_failures_logs_and_progress(finished: dict) -> None:
    out = finished["out"]
    rows = read_csv(out / "results.csv")
    assert [(r["model"], r["seed"]) for r in rows] == [
        (m, s) for s in ("1", "2") for m in ("SASRec", "RKSA", "Crash", "Slow")
    ]
    by = {(r["model"], r["seed"]): r for r in rows}
    ok = by[("SASRec", "2")]
    assert (ok["status"], ok["error"], ok["implementation"]) == ("ok", "", "fake.SASRec")
    assert (ok["test_hit@10"], ok["test_ndcg@10"], ok["protocol"]) == ("0.56", "0.34", "uni100")
    assert (ok["epochs"], ok["seconds_per_epoch"], ok["peak_memory_mb"]) == ("3", "0.5", "100.0")
    assert ok["versions"] == "recbole=1.2.1 torch=2.13.0" and ok["run_config_hash"] == "run2"
    assert ok["config_hash"] == finished["suite"].runs()[0].config_hash and ok["hardware"]
    assert json.loads(ok["overrides"])["MAX_ITEM_LIST_LENGTH"] == 20
    crash, slow = by[("Crash", "1")], by[("Slow", "1")]
    assert (crash["status"], crash["error"]) == ("failed", "error: CUDA out of memory")
    assert slow["status"] == "failed" and slow["error"].startswith("timeout after 1 s")
    assert crash["test_ndcg@10"] == ""
    log = (out / "logs" / "Crash-toy-1.log").read_text()
    assert "--model Crash" in log and "epoch 0 training" in log and "Traceback" in log
    assert all(line.endswith(str(out)) for line in calls_of(finished))  # cwd = output folder
    assert "[1/8] SASRec on toy seed 1 (elapsed 0:00:00, 7 left)" in finished["progress"]
    assert finished["summary"].failed == 4 and finished["summary"].ran == 8
    report = (out / "results.md").read_text()
    assert "## toy (protocol: uni100)" in report and "| SASRec | 2 |" in report
    failed_part = report.split("## Failed runs")[1]
    assert "error: CUDA out of memory" in failed_part and "timeout after 1 s" in failed_part


def test_report_mean_std_bold_and_paired_test(finished: dict) -> None:
    report = (finished["out"] / "results.md").read_text()
    # SASRec: hit (0.50, 0.56), ndcg (0.30, 0.34); RKSA: hit (0.52, 0.60), ndcg (0.32, 0.38).
    # Sample std of two values = |a - b| / sqrt(2).
    assert (
        "| SASRec | 2 | 0.5300 ± 0.0424 | 0.3200 ± 0.0283 | early stopping | 3 | 0.50 | 1.5 | 100 |"
        in report
    )
    assert "| RKSA | 2 | **0.5600 ± 0.0566** | **0.3500 ± 0.0424** | early stopping | 3 |" in report
    # Paired differences RKSA - SASRec in NDCG: 0.02, 0.04 -> t = 0.03 / (0.02/sqrt(2)/sqrt(2)) = 3,
    # one degree of freedom: p = 1 - 2/pi * atan(3).
    hand_p = 1 - 2 / math.pi * math.atan(3.0)
    scipy_p = stats.ttest_rel([0.32, 0.38], [0.30, 0.34]).pvalue
    assert scipy_p == pytest.approx(hand_p, rel=1e-9)
    test = paired_test({1: 0.32, 2: 0.38}, {1: 0.30, 2: 0.34})
    assert (test.n, test.mean_diff, test.p_value) == (2, pytest.approx(0.03), scipy_p)
    # two seeds: the seed-level test is not shown (it needs 3); no per-user files either
    assert "Seed-level paired t-test against SASRec: not shown (it needs at least 3" in report
    assert "Per-user paired tests against SASRec: n/a (no per-user metrics files)." in report
    assert f"+0.0300, p = {scipy_p:.4g} (n=2)" == test.describe()
    assert "- Fake note." in report and "fake.RKSA" in report
    assert "`python -m recbole_sasrec_ext.benchmark fake.yaml --out out`" in report


def test_plots_are_valid_pngs(finished: dict) -> None:
    names = {p.name for p in finished["written"]}
    assert names == {"results.md", "metrics.png", "convergence.png", "explanation.png"}
    for name in ("metrics.png", "convergence.png", "explanation.png"):
        path = finished["out"] / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert plt.imread(path).shape[0] > 100
    histories = results.read_histories(finished["out"] / "histories.jsonl")
    assert len(histories) == 4  # the ok runs only
    assert [e.model for e in histories if e.explanation] == ["RKSA", "RKSA"]
    assert histories[1].explanation.mixture == {"co-occurrence": 0.5, "item": 0.3, "user": 0.2}
    assert [r.train_seconds for r in histories[0].valid_history] == [0.5, 1.0, 1.5]


def test_report_subcommand_remakes_the_same_report(finished: dict, tmp_path: Path) -> None:
    out = copy_of(finished, tmp_path)
    before = (out / "results.md").read_text()
    for name in ("results.md", "metrics.png", "convergence.png", "explanation.png"):
        (out / name).unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "results.md").read_text() == before and (out / "metrics.png").is_file()
    assert cli.main(["report", str(out / "nothing")]) == 2


def test_resume_skips_finished_and_retries_failed(finished: dict, tmp_path: Path) -> None:
    out = copy_of(finished, tmp_path)
    fake = make_fake(tmp_path / "fake", crash=(), slow=())  # the failed runs now succeed
    stream = io.StringIO()
    summary = run_suite(finished["suite"], out, command_prefix=fake["prefix"], stream=stream)
    assert sorted(c.split()[0] for c in calls_of(fake)) == ["Crash", "Crash", "Slow", "Slow"]
    assert (summary.ran, summary.skipped, summary.failed) == (4, 4, 0)
    assert "[1/8] SASRec on toy seed 1: already in results.csv, skipped" in stream.getvalue()
    rows = read_csv(out / "results.csv")
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    assert [(r["model"], r["seed"]) for r in rows][2:4] == [("Crash", "1"), ("Slow", "1")]


def test_max_runs_then_resume(tmp_path: Path, fake: dict) -> None:
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["SASRec", "Pop"], [1, 2]))
    out = tmp_path / "out"
    first = run_suite(suite, out, max_runs=3, command_prefix=fake["prefix"], stream=io.StringIO())
    assert (first.ran, first.stopped_early, len(calls_of(fake))) == (3, True, 3)
    second = run_suite(suite, out, command_prefix=fake["prefix"], stream=io.StringIO())
    assert (second.ran, second.skipped, second.stopped_early) == (1, 3, False)
    assert len(read_csv(out / "results.csv")) == 4


def test_other_failures_are_rows(tmp_path: Path, fake: dict) -> None:
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["NoJson", "Killed", "Partial"], [1]))
    run_suite(suite, tmp_path / "out", command_prefix=fake["prefix"], stream=io.StringIO())
    errors = {r["model"]: r["error"] for r in read_csv(tmp_path / "out" / "results.csv")}
    assert errors["NoJson"] == "exit code 0 but the last stdout line is not a JSON object"
    assert errors["Partial"] == "run summary: missing field 'peak_memory_mb'"
    assert errors["Killed"].startswith("killed by signal 9 SIGKILL (out of memory?)")


def test_one_seed_gives_no_test(tmp_path: Path, fake: dict) -> None:
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["SASRec", "RKSA"], [1]))
    run_suite(suite, tmp_path / "out", command_prefix=fake["prefix"], stream=io.StringIO())
    write_report(tmp_path / "out")
    report = (tmp_path / "out" / "results.md").read_text()
    assert "| RKSA | 1 | **0.5200** | **0.3200** |" in report
    assert "this table has at most 1)" in report
    tables = build_tables(results.read_rows(tmp_path / "out" / "results.csv"))
    assert [m.label for m in tables[0].models] == ["SASRec", "RKSA"]


def test_two_configurations_of_a_model_are_two_rows(tmp_path: Path) -> None:
    base = {"dataset": "d", "protocol": "full", "status": "ok", "test_ndcg@10": "0.1"}
    rows = [
        {**base, "model": "SASRec", "seed": "1", "config_hash": "aaaaaa111111"},
        {**base, "model": "SASRec", "seed": "1", "config_hash": "bbbbbb222222"},
        {**base, "model": "Pop", "seed": "1", "config_hash": "cccccc333333"},
        {**base, "model": "Pop", "seed": "2", "config_hash": "cccccc333333", "status": "failed"},
    ]
    (table,) = build_tables(rows, model_order=["Pop", "SASRec"])
    assert [m.label for m in table.models] == ["Pop", "SASRec [aaaaaa]", "SASRec [bbbbbb]"]
    assert table.reference is table.models[-1] and table.models[0].seeds == [1]


# ----- atomic writes --------------------------------------------------------------------------


def test_failed_write_keeps_the_previous_csv(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "results.csv"
    row = {"model": "A", "dataset": "d", "seed": "1", "status": "ok", "config_hash": "h"}
    results.write_rows(path, [row])
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic_write.os, "replace", broken_replace)
    with pytest.raises(OSError):
        results.write_rows(path, [row, {**row, "seed": "2"}])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temporary file left


def test_killed_benchmark_leaves_a_whole_csv_and_resumes(tmp_path: Path, fake: dict) -> None:
    path = write_suite(tmp_path / "s.yaml", ["SASRec", "Slow"], [1], timeout_s=60)
    out = tmp_path / "out"
    env = {
        **os.environ,
        RUN_CMD_ENV: shlex.join(fake["prefix"]),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "recbole_sasrec_ext.benchmark", str(path), "--out", str(out)]
    bench = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not (fake["pids"].exists() and fake["pids"].read_text().strip()):  # Slow has started
        assert time.monotonic() < deadline and bench.poll() is None
        time.sleep(0.05)
    bench.kill()  # the benchmark dies between runs' writes
    bench.wait()
    rows = read_csv(out / "results.csv")
    assert [(r["model"], r["status"]) for r in rows] == [("SASRec", "ok")]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    env[RUN_CMD_ENV] = shlex.join(make_fake(tmp_path / "fake", slow=())["prefix"])
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert [c.split()[0] for c in calls_of(fake)] == ["SASRec", "Slow", "Slow"]
    assert "finished: 1 run now (0 failed), 1 already done, of 2 planned" in done.stderr
    assert (out / "results.md").is_file()


def test_only_datasets_restricts_the_plan_and_rejects_unknown_names(capsys, tmp_path):
    from conftest import tiny_rows, write_inter

    from recbole_sasrec_ext.benchmark.cli import main as bench_main

    # the dry-run checks each run's data (issue 22): a small games data set under --data-root
    write_inter(tmp_path / "datasets", "games", tiny_rows(),
                header="user_id:token\titem_id:token\ttimestamp:float")
    assert bench_main(["paper-sasrec", "--profile", "cpu", "--out", "x", "--only-datasets", "games",
                       "--only-models", "Pop", "--dry-run", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "--dataset games" in out and "--dataset ml-1m" not in out
    assert bench_main(["paper-sasrec", "--profile", "cpu", "--out", "x", "--only-datasets", "nope",
                       "--dry-run"]) == 2
    assert "no data set nope" in capsys.readouterr().err


def test_anchors_column_shows_published_numbers_beside_the_models(tmp_path: Path, fake) -> None:
    extra = 'anchors:\n  toy:\n    SASRec: "0.0531 / 0.0921 (SASRec+)"\n'
    path = write_suite(tmp_path / "anchored.yaml", ["SASRec", "RKSA"], [1], extra=extra)
    suite = load_suite(path)
    assert suite.anchors == {"toy": {"SASRec": "0.0531 / 0.0921 (SASRec+)"}}
    out = tmp_path / "out"
    run_suite(suite, out, command_prefix=fake["prefix"], stream=io.StringIO())
    write_report(out)
    report = (out / "results.md").read_text()
    assert "| model | seeds | hit@10 | ndcg@10 | published | stopped by |" in report
    assert "| 0.0531 / 0.0921 (SASRec+) | early stopping |" in report
    rksa = next(line for line in report.splitlines() if line.startswith("| RKSA |"))
    assert "|  | early stopping |" in rksa  # no published number for RKSA


@pytest.mark.parametrize("anchors, message", [
    ("anchors:\n  other: {SASRec: x}\n", "anchors.other: not a data set of this suite"),
    ("anchors:\n  toy: {GRU: x}\n", "anchors.toy.GRU: not a model of this suite"),
    ("anchors:\n  toy: {SASRec: 0.05}\n", "anchors.toy.SASRec: must be a non-empty string"),
    ("anchors: [1]\n", "anchors: must be a mapping"),
])
def test_bad_anchors_name_the_key(tmp_path: Path, anchors: str, message: str) -> None:
    path = write_suite(tmp_path / "bad.yaml", ["SASRec"], [1], extra=anchors)
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_suite(path)
