"""``--jobs N``: N runs of a suite at a time, one thread each, and the same rows as one by one."""

import io
import json
from pathlib import Path

import pytest
from test_benchmark import calls_of, kill_hung_fakes, make_fake, read_csv, write_suite

from recbole_sasrec_ext.benchmark import cli, results, runner
from recbole_sasrec_ext.benchmark.suite import SuiteError, load_suite

MODELS = ["SASRec", "RKSA", "Crash", "Slow"]
#: Columns that differ between two runs of the same suite (times, dates, where it ran, and the
#: checksum over them).
VOLATILE = {"date", "train_seconds", "wall_seconds", "seconds_per_epoch", "fit_wall_seconds",
            "hardware", "peak_memory_mb", "check"}


def _run(tmp_path: Path, name: str, jobs: int, monkeypatch) -> tuple[list[dict], int, list[str]]:
    fake = make_fake(tmp_path / f"fake-{name}")
    config_path = Path(fake["prefix"][-1])
    config = json.loads(config_path.read_text())
    config["threads"] = str(tmp_path / f"threads-{name}.txt")
    config_path.write_text(json.dumps(config))
    suite = load_suite(write_suite(tmp_path / f"{name}.yaml", MODELS, [1, 2], timeout_s=1.0))
    running, most = set(), [0]
    start, finish = runner._start_process, runner._Started.finish

    def counting_start(*args, **kwargs):
        started = start(*args, **kwargs)
        running.add(started.process.pid)
        most[0] = max(most[0], len(running))
        return started

    def counting_finish(self, *args, **kwargs):
        running.discard(self.process.pid)
        return finish(self, *args, **kwargs)

    monkeypatch.setattr(runner, "_start_process", counting_start)
    monkeypatch.setattr(runner._Started, "finish", counting_finish)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        runner.run_suite(suite, tmp_path / name, command_prefix=fake["prefix"],
                         stream=io.StringIO(), jobs=jobs)
    finally:
        kill_hung_fakes(fake)
    rows = read_csv(tmp_path / name / results.CSV_NAME)
    threads = Path(config["threads"]).read_text().splitlines()
    assert len(calls_of(fake)) == len(MODELS) * 2
    return rows, most[0], threads


def _comparable(rows: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE} for r in rows),
                  key=lambda r: (r["model"], r["seed"]))


def test_jobs_run_at_once_one_thread_each_with_the_rows_of_a_sequential_run(
    tmp_path, monkeypatch
):
    one, most_one, threads_one = _run(tmp_path, "one", 1, monkeypatch)
    two, most_two, threads_two = _run(tmp_path, "two", 2, monkeypatch)
    assert most_one == 1 and most_two == 2
    assert _comparable(two) == _comparable(one)
    statuses = {(r["model"], r["status"]) for r in two}
    assert ("Crash", "failed") in statuses and ("Slow", "failed") in statuses  # timeout too
    assert ("SASRec", "ok") in statuses
    assert all(line.endswith(" 1") for line in threads_two)  # one thread per parallel run
    assert all(line.endswith(" -") for line in threads_one)  # one job: the caller's setting


def test_an_explicit_thread_count_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    fake = make_fake(tmp_path / "fake")
    config_path = Path(fake["prefix"][-1])
    config = json.loads(config_path.read_text())
    config["threads"] = str(tmp_path / "threads.txt")
    config_path.write_text(json.dumps(config))
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["SASRec", "RKSA"], [1], timeout_s=30))
    runner.run_suite(suite, tmp_path / "out", command_prefix=fake["prefix"],
                     stream=io.StringIO(), jobs=2)
    assert sorted(Path(config["threads"]).read_text().splitlines()) == ["RKSA 1 2", "SASRec 1 2"]


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_jobs_is_a_usage_error(tmp_path, value, capsys):
    suite = write_suite(tmp_path / "s.yaml", ["SASRec"], [1])
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(suite), "--out", str(tmp_path / "out"), "--jobs", value])
    assert exit_info.value.code == 2
    assert "--jobs" in capsys.readouterr().err


def _threads_suite(tmp_path: Path, threads_line: str = "threads: 2") -> Path:
    path = write_suite(tmp_path / "t.yaml", ["RKSA", "Caser", "SASRec"], [1], timeout_s=30)
    text = path.read_text().replace(
        "  SASRec: {epochs: 3}", f"  SASRec: {{epochs: 3, {threads_line}}}"
    )
    path.write_text(text)
    return path


def _fake_with_thread_log(tmp_path: Path) -> tuple[dict, Path]:
    fake = make_fake(tmp_path / "fake")
    config_path = Path(fake["prefix"][-1])
    config = json.loads(config_path.read_text())
    config["threads"] = str(tmp_path / "threads.txt")
    config_path.write_text(json.dumps(config))
    return fake, Path(config["threads"])


@pytest.mark.parametrize(
    ("setting", "sasrec_threads"),
    [("threads: 2", "2"),  # one process, two threads
     ("nproc: 2", "1"),  # two processes (run_recbole.py --nproc=2), one thread each
     ("nproc: 2, threads: 2", "1")],  # four places asked, two there: one thread per process
)
def test_a_run_with_threads_takes_that_many_places_and_starts_first(
    tmp_path, monkeypatch, setting, sasrec_threads
):
    fake, log = _fake_with_thread_log(tmp_path)
    suite = load_suite(_threads_suite(tmp_path, setting))
    running, seen = {}, []  # pid -> model; (model started, models running beside it)
    start, finish = runner._start_process, runner._Started.finish

    def recording_start(spec, *args, **kwargs):
        started = start(spec, *args, **kwargs)
        seen.append((spec.model, sorted(running.values())))
        running[started.process.pid] = spec.model
        return started

    def recording_finish(self, *args, **kwargs):
        running.pop(self.process.pid, None)
        return finish(self, *args, **kwargs)

    monkeypatch.setattr(runner, "_start_process", recording_start)
    monkeypatch.setattr(runner._Started, "finish", recording_finish)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        runner.run_suite(suite, tmp_path / "out", command_prefix=fake["prefix"],
                         stream=io.StringIO(), jobs=2)
    finally:
        kill_hung_fakes(fake)
    # SASRec (2 places of 2) first and alone, then the others two at a time in plan order
    assert seen == [("SASRec", []), ("RKSA", []), ("Caser", ["RKSA"])]
    assert sorted(log.read_text().splitlines()) == [
        "Caser 1 1", "RKSA 1 1", f"SASRec 1 {sasrec_threads}"
    ]
    rows = read_csv(tmp_path / "out" / results.CSV_NAME)
    assert {r["model"]: r["status"] for r in rows} == {m: "ok" for m in ("RKSA", "Caser", "SASRec")}


def test_threads_with_one_job_and_a_count_above_jobs(tmp_path, monkeypatch):
    fake, log = _fake_with_thread_log(tmp_path)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    suite = load_suite(_threads_suite(tmp_path, "threads: 4"))
    try:
        runner.run_suite(suite, tmp_path / "one", command_prefix=fake["prefix"],
                         stream=io.StringIO(), jobs=1)
        runner.run_suite(suite, tmp_path / "two", command_prefix=fake["prefix"],
                         stream=io.StringIO(), jobs=2)
    finally:
        kill_hung_fakes(fake)
    lines = log.read_text().splitlines()
    # one job: the suite's count, the caller's setting for the others; two jobs: at most 2
    assert sorted(lines[:3]) == ["Caser 1 -", "RKSA 1 -", "SASRec 1 4"]
    assert sorted(lines[3:]) == ["Caser 1 1", "RKSA 1 1", "SASRec 1 2"]


def test_threads_are_checked_not_hashed_and_a_profile_may_set_them(tmp_path):
    plain = load_suite(write_suite(tmp_path / "p.yaml", ["RKSA", "Caser", "SASRec"], [1]))
    with_threads = load_suite(_threads_suite(tmp_path))
    keys = [spec.key for spec in plain.runs()]
    assert [spec.key for spec in with_threads.runs()] == keys  # finished rows stay finished
    assert [spec.threads for spec in with_threads.runs()] == [None, None, 2]
    profiled = _threads_suite(tmp_path)
    profiled.write_text(profiled.read_text() + "profiles:\n  cpu:\n    models:\n"
                        "      SASRec: {threads: 1}\n      Caser: {threads: 2}\n")
    chosen = load_suite(profiled).with_profile("cpu")
    assert [spec.threads for spec in chosen.runs()] == [None, 2, 1]
    for bad in ("threads: 0", "threads: two", "threads: 1.5", "threads: true"):
        with pytest.raises(SuiteError, match=r"models\.SASRec\.threads: must be a whole number"):
            load_suite(_threads_suite(tmp_path, bad))
    for bad in ("nproc: 0", "nproc: two", "nproc: 1.5", "nproc: true"):
        with pytest.raises(SuiteError,
                           match=r"models\.SASRec\.nproc: must be a whole number of processes"):
            load_suite(_threads_suite(tmp_path, bad))
    two = load_suite(_threads_suite(tmp_path, "nproc: 2")).runs()
    assert [spec.processes for spec in two] == [1, 1, 2]
    assert "--nproc=2" in two[2].args()
