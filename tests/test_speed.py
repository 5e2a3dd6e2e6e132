"""Tests of the ``speed`` command with a fake single-run command (no model is trained)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from recbole_sasrec_ext.benchmark import cli, results
from recbole_sasrec_ext.benchmark.runner import RUN_CMD_ENV
from recbole_sasrec_ext.benchmark.speed import (
    SPEED_NAME,
    format_ratio,
    ratio,
    time_phrase,
    time_to_target,
)
from recbole_sasrec_ext.benchmark.suite import load_suite
from recbole_sasrec_ext.contract.summary import ValidationRecord


def entry(epoch: int, seconds: float, score: float, hit: float = 0.0) -> ValidationRecord:
    """One validation of a run's ``valid_history``."""
    return ValidationRecord(epoch, seconds, score, {"hit@10": hit, "ndcg@10": score})


# Scores rise, dip, rise again: the first entry reaching a target is not always the best one.
HISTORY = [entry(0, 4.0, 0.10), entry(1, 8.0, 0.30), entry(2, 12.0, 0.25), entry(3, 16.0, 0.40)]


# ----- time to target and ratios ----------------------------------------------------------------


def test_time_to_target_is_the_first_validation_at_or_above_the_target() -> None:
    reached = time_to_target(HISTORY, 0.28)
    assert (reached.seconds, reached.epoch, reached.best) == (8.0, 1, 0.40) and reached.reached
    assert time_to_target(HISTORY, 0.31).seconds == 16.0  # the dip at epoch 2 does not count
    assert time_to_target(HISTORY, 0.05).seconds == 4.0


def test_time_to_target_counts_a_score_equal_to_the_target() -> None:
    assert time_to_target(HISTORY, 0.30).seconds == 8.0
    assert time_to_target(HISTORY, 0.40).seconds == 16.0
    assert time_to_target(HISTORY, 0.30 + 1e-12).seconds == 16.0


def test_time_to_target_not_reached_reports_the_best_score() -> None:
    missed = time_to_target(HISTORY, 0.41)
    assert not missed.reached and (missed.seconds, missed.epoch, missed.best) == (None, None, 0.40)
    assert time_to_target(HISTORY, None) == missed  # no target (reference failed)
    empty = time_to_target([], 0.1)
    assert not empty.reached and empty.best is None


def test_time_to_target_on_another_metric_reads_valid_result() -> None:
    history = [entry(0, 1.0, 0.5, hit=0.2), entry(1, 2.0, 0.1, hit=0.6)]
    assert time_to_target(history, 0.5).seconds == 1.0
    by_hit = time_to_target(history, 0.5, metric="hit@10")
    assert (by_hit.seconds, by_hit.epoch, by_hit.best) == (2.0, 1, 0.6)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1 / 37, "1/37"),
        (12.0 / 480.0, "1/40"),
        (0.4, "1/2.5"),
        (0.8, "0.80×"),
        (1.0, "1.0×"),
        (2.44, "2.4×"),
        (37.4, "37×"),
        (None, "n/a"),
        (0.0, "n/a"),
        (float("inf"), "n/a"),
    ],
)
def test_format_ratio(value: float | None, text: str) -> None:
    assert format_ratio(value) == text


def test_ratio_and_time_phrase() -> None:
    assert ratio(12.0, 480.0) == 0.025
    assert ratio(None, 1.0) is None and ratio(1.0, None) is None and ratio(1.0, 0.0) is None
    assert time_phrase(ratio(12.0, 444.0)) == "1/37 of the time"
    assert time_phrase(ratio(3.0, 2.0)) == "1.5× the time"
    assert time_phrase(None) == "n/a the time"


# ----- the speed command on a fake suite ----------------------------------------------------------

# `python fake_run.py <plan.json>` + the real argv: prints the result of plan["<model>/<dataset>"]
# (or exits 1 if it is missing) and appends "model dataset" to plan["calls"].
FAKE_RUN = textwrap.dedent(
    """
    import json, sys
    from recbole_sasrec_ext.contract.summary import RunSummary
    plan = json.load(open(sys.argv[1]))
    args = sys.argv[2:]
    model, dataset = args[args.index("--model") + 1], args[args.index("--dataset") + 1]
    with open(plan["calls"], "a") as f:
        f.write(f"{model} {dataset}\\n")
    result = plan["runs"].get(f"{model}/{dataset}")
    if result is None:
        print("error: fake crash", file=sys.stderr)
        sys.exit(1)
    print(RunSummary.from_dict({
        "model": model, "implementation": "fake." + model, "dataset": dataset, "seed": 7,
        "protocol": "full", "device": "cpu", "best_valid_result": {}, "fit_wall_seconds": 1.0,
        "config_hash": "h", "versions": {}, "checkpoint": None, "schema_version": 1, **result,
    }).to_json())
    """
)


def fake_result(history: list[dict], seconds_per_epoch: float, memory: float, test: float) -> dict:
    best = max(history, key=lambda e: e.valid_score)
    epochs = len(history)
    return {
        "valid_history": [e.to_dict() for e in history],
        "best_valid_score": best.valid_score,
        "best_epoch": best.epoch,
        "epochs": epochs,
        "train_seconds": seconds_per_epoch * epochs,
        "seconds_per_epoch": seconds_per_epoch,
        "peak_memory_mb": memory,
        "test_result": {"hit@10": 2 * test, "ndcg@10": test},
    }


REF_HISTORY = [entry(0, 160.0, 0.02, 0.1), entry(1, 320.0, 0.04, 0.2), entry(2, 480.0, 0.05, 0.3)]
CAND_HISTORY = [entry(e, 4.0 * (e + 1), s, 0.1) for e, s in enumerate([0.03, 0.049, 0.05, 0.06])]
RUNS = {
    # toy: the candidate reaches the target (0.05) exactly at its third validation, 12 s vs 480 s
    "Ref/toy": fake_result(REF_HISTORY, 160.0, 2000.0, 0.05),
    "Cand/toy": fake_result(CAND_HISTORY, 4.0, 500.0, 0.06),
    # toy2: the candidate never reaches the reference's 0.05
    "Ref/toy2": fake_result(REF_HISTORY, 160.0, 2000.0, 0.05),
    "Cand/toy2": fake_result([entry(0, 4.0, 0.01), entry(1, 8.0, 0.045)], 4.0, 500.0, 0.04),
    # toy3: no "Ref/toy3": the reference crashes, so there is no target
    "Cand/toy3": fake_result(CAND_HISTORY, 4.0, 500.0, 0.06),
}

SUITE = """\
description: Fake speed suite.
timeout_s: 30
seeds: [7]
common:
  eval_args: {split: {LS: valid_and_test}, order: TO, mode: full}
  metrics: [Hit, NDCG]
  topk: [10]
  valid_metric: NDCG@10
datasets:
  toy: {}
  toy2: {}
  toy3: {}
models:
  Ref: {epochs: 3}
  Cand: {epochs: 4}
  Other: {}
notes:
  - Fake speed note.
"""


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The fake run command, set through the environment as a user would."""
    script, plan = tmp_path / "fake_run.py", tmp_path / "plan.json"
    script.write_text(FAKE_RUN)
    calls = tmp_path / "calls.txt"
    plan.write_text(json.dumps({"calls": str(calls), "runs": RUNS}))
    monkeypatch.setenv(RUN_CMD_ENV, f"{sys.executable} {script} {plan}")
    return {"calls": calls}


def write_speed_suite(path: Path, extra: str = "reference: Ref\ncandidate: Cand\n") -> Path:
    path.write_text(SUITE + extra)
    return path


def section(text: str, dataset: str) -> str:
    return text.split(f"## {dataset} ")[1].split("\n## ")[0]


def test_speed_writes_a_side_by_side_report(
    tmp_path: Path, fake: dict, capsys: pytest.CaptureFixture
) -> None:
    suite, out = write_speed_suite(tmp_path / "s.yaml"), tmp_path / "out"
    assert cli.main(["speed", str(suite), "--out", str(out)]) == 0
    text = (out / SPEED_NAME).read_text()
    assert capsys.readouterr().out == text  # printed too

    # Only the reference and the candidate ran, reference first; the runner's files are there.
    calls = fake["calls"].read_text().split("\n")[:-1]
    assert calls == [f"{m} {d}" for d in ("toy", "toy2", "toy3") for m in ("Ref", "Cand")]
    rows = results.read_rows(out / results.CSV_NAME)
    assert [(r["model"], r["dataset"], r["status"]) for r in rows][:2] == [
        ("Ref", "toy", "ok"),
        ("Cand", "toy", "ok"),
    ]
    assert len(results.read_histories(out / results.HISTORIES_NAME)) == 5

    assert text.startswith("# Speed: s\n\nFake speed suite.\n")
    assert "Candidate `Cand` (fake.Cand) against reference `Ref` (fake.Ref)" in text
    assert "best validation NDCG@10" in text and "- Fake speed note." in text
    assert f"- Command: `python -m recbole_sasrec_ext.benchmark speed {suite} --out {out}`" in text
    assert "- Hardware: " in text and "- Date: runs between " in text

    toy = section(text, "toy")
    assert toy.startswith("(protocol full, seed 7)")
    assert (
        "`Cand` reached `Ref`'s best validation NDCG@10 (0.0500) in 1/40 of the time "
        "(12.0 s against 480.0 s of training)." in toy
    )
    assert "takes 1/40 of the time of one of `Ref` (4.00 s against 160.00 s)" in toy
    assert "| time to target (s) | 480.0 (after epoch 3) | 12.0 (after epoch 3) | 1/40 |" in toy
    assert "| best validation NDCG@10 | 0.0500 | 0.0600 | 1.2× |" in toy
    assert "| seconds per epoch | 160.00 | 4.00 | 1/40 |" in toy
    assert "| training seconds | 480.0 | 16.0 | 1/30 |" in toy
    assert "| epochs run | 3 | 4 | 1.3× |" in toy
    assert "| peak memory (MB) | 2000 | 500 | 1/4.0 |" in toy
    assert "| test hit@10 | 0.1000 | 0.1200 | 1.2× |" in toy
    assert "| test ndcg@10 | 0.0500 | 0.0600 | 1.2× |" in toy
    assert "`logs/Ref-toy-7.log`" in toy

    toy2 = section(text, "toy2")
    assert (
        "`Cand` did not reach `Ref`'s best validation NDCG@10 (0.0500); its best was 0.0450."
        in toy2
    )
    assert (
        "| time to target (s) | 480.0 (after epoch 3) | not reached (best 0.0450) | n/a |" in toy2
    )

    toy3 = section(text, "toy3")
    assert "- `Ref` has no successful run (error: fake crash)." in toy3
    assert "| time to target (s) | no target | no target | n/a |" in toy3
    assert "| seconds per epoch |  | 4.00 | n/a |" in toy3

    # Resumable: a second call runs only the failed reference and rewrites the report.
    assert cli.main(["speed", str(suite), "--out", str(out)]) == 0
    assert fake["calls"].read_text().split("\n")[:-1][len(calls) :] == ["Ref toy3"]


def test_speed_target_metric_reads_the_validation_results(
    tmp_path: Path, fake: dict, capsys: pytest.CaptureFixture
) -> None:
    suite, out = write_speed_suite(tmp_path / "s.yaml"), tmp_path / "out"
    assert cli.main(["speed", str(suite), "--out", str(out), "--target-metric", "HIT@10"]) == 0
    toy = section((out / SPEED_NAME).read_text(), "toy")
    # Ref's best hit@10 is 0.3 (after 480 s); Cand's hit@10 stays at 0.1.
    assert (
        "`Cand` did not reach `Ref`'s best validation hit@10 (0.3000); its best was 0.1000." in toy
    )
    assert "| best validation hit@10 | 0.3000 | 0.1000 | 1/3.0 |" in toy


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("mrr@10", "--target-metric: mrr@10 is not computed for Ref"),
        ("ndcg", "expected <metric>@<k>"),
    ],
)
def test_speed_rejects_a_target_metric_that_is_not_computed(
    option: str, expected: str, tmp_path: Path, fake: dict, capsys: pytest.CaptureFixture
) -> None:
    suite, out = write_speed_suite(tmp_path / "s.yaml"), tmp_path / "out"
    assert cli.main(["speed", str(suite), "--out", str(out), "--target-metric", option]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists() and not fake["calls"].exists()


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ("", "reference", "missing"),
        ("reference: Ref\n", "candidate", "missing"),
        ("candidate: Cand\n", "reference", "missing"),
        ("reference: Nope\ncandidate: Cand\n", "reference", "'Nope' is not a model of this suite"),
        ("reference: Ref\ncandidate: [Cand]\n", "candidate", "is not a model of this suite"),
        ("reference: Ref\ncandidate: Ref\n", "candidate", "must differ from reference"),
    ],
)
def test_speed_without_a_valid_reference_or_candidate_exits_2(
    extra: str, key: str, message: str, tmp_path: Path, fake: dict, capsys: pytest.CaptureFixture
) -> None:
    suite, out = write_speed_suite(tmp_path / "s.yaml", extra), tmp_path / "out"
    assert cli.main(["speed", str(suite), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{suite}: {key}: " in err and message in err
    assert not out.exists() and not fake["calls"].exists()


def test_plain_benchmark_accepts_and_ignores_reference_and_candidate(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the fake models run with a fake command: the dry-run checks only the plugin's own runs
    monkeypatch.setenv(RUN_CMD_ENV, f"{sys.executable} fake_run.py")
    suite = write_speed_suite(tmp_path / "s.yaml")
    assert cli.main([str(suite), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3 * 3  # every model, Other included


def test_shipped_speed_suites_follow_the_brief() -> None:
    sasrec = load_suite("sasrec-speed")
    assert (sasrec.reference, sasrec.candidate) == ("RecBole.SASRec", "SASRec")
    assert list(sasrec.datasets) == ["ml-100k"] and sasrec.seeds == (2020,)
    assert sasrec.timeout_s == 3600
    runs = {r.model: r.overrides for r in sasrec.runs()}
    assert runs["RecBole.SASRec"]["train_neg_sample_args"] is None
    assert (runs["RecBole.SASRec"]["epochs"], runs["RecBole.SASRec"]["stopping_step"]) == (6, 3)
    cand = runs["SASRec"]
    assert (cand["loss_type"], cand["hidden_dropout_prob"], cand["attn_dropout_prob"]) == (
        "CE",
        0.5,
        0.5,
    )
    assert (cand["epochs"], cand["stopping_step"]) == (200, 20)
    assert all(
        r.protocol == "full" and r.overrides["valid_metric"] == "NDCG@10" for r in sasrec.runs()
    )
    assert "data_path" not in cand and any("160 s" in n for n in sasrec.notes)

    rksa = load_suite("rksa-speed")
    assert (rksa.reference, rksa.candidate) == ("SASRec", "RKSA")
    assert list(rksa.datasets) == ["games", "beauty"] and rksa.timeout_s == 3600
    for run in rksa.runs():
        assert run.protocol == "uni100" and run.seed == 2020
        assert (run.overrides["epochs"], run.overrides["eval_step"]) == (3, 3)
        assert run.overrides["stopping_step"] == 1
        assert run.overrides["data_path"].endswith("/datasets/")
    assert any("not quality" in n for n in rksa.notes)


def test_loss_cost_times_each_loss_and_label_smoothing_side_by_side(capsys):
    """The loss benchmark prints one line per variant (CE, sampled softmax, and CE with label
    smoothing when asked), each with its ratio to CE (CE's own is exactly 1)."""
    from recbole_sasrec_ext.benchmark import loss_cost

    assert loss_cost.main(["--items", "30", "--users", "8", "--max-len", "6", "--batch", "4",
                           "--hidden", "8", "--negatives", "5", "--steps", "1",
                           "--label-smoothing", "0.3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["loss_type"] for r in rows] == ["CE", "SAMPLED_SOFTMAX", "CE+label_smoothing=0.3"]
    assert rows[0]["ratio_to_ce"] == 1.0 and rows[1]["n_negatives"] == 5
    assert all(r["shape"] == [4, 6, 8, 30] and r["median_s_per_batch"] > 0 for r in rows)


@pytest.mark.parametrize("args, message", [
    (["--label-smoothing", "1.5"], "--label-smoothing 1.5: expected a float in [0, 1)"),
    (["--steps", "0"], "--steps 0: expected an int >= 1"),
])
def test_loss_cost_refuses_bad_arguments_in_one_line(args, message, capsys):
    from recbole_sasrec_ext.benchmark import loss_cost

    with pytest.raises(SystemExit) as exit_info:
        loss_cost.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].endswith(message)
