"""Benchmark runner and report: a results row cut inside its last cell is run again, two
runners never share an output folder, bad folders and files are one-line errors (issue 22)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from test_benchmark import calls_of, make_fake, write_suite

from recbole_sasrec_ext.benchmark import cli, results
from recbole_sasrec_ext.benchmark.runner import run_suite
from recbole_sasrec_ext.benchmark.suite import load_suite


@pytest.fixture
def fake(tmp_path: Path) -> dict:
    return make_fake(tmp_path / "fake")


@pytest.mark.parametrize("cut", [1, 5, 15])
def test_a_row_cut_inside_its_last_cell_is_run_again(tmp_path, fake, cut):
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["SASRec", "RKSA"], [1]))
    out = tmp_path / "out"
    run_suite(suite, out, command_prefix=fake["prefix"], stream=io.StringIO())
    csv_path = out / results.CSV_NAME
    text = csv_path.read_text()
    csv_path.write_text(text[: len(text) - 1 - cut] + "\n")  # the line end kept
    assert [r["model"] for r in results.read_rows(csv_path)] == ["SASRec"]
    summary = run_suite(suite, out, command_prefix=fake["prefix"], stream=io.StringIO())
    assert (summary.ran, summary.skipped) == (1, 1)
    assert [c.split()[0] for c in calls_of(fake)] == ["SASRec", "RKSA", "RKSA"]


def test_an_edited_cell_makes_the_row_run_again(tmp_path, fake):
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["SASRec"], [1]))
    out = tmp_path / "out"
    run_suite(suite, out, command_prefix=fake["prefix"], stream=io.StringIO())
    csv_path = out / results.CSV_NAME
    rows = results.read_rows(csv_path)
    value = next(v for k, v in rows[0].items() if k.startswith("test_"))
    csv_path.write_text(csv_path.read_text().replace(value, "0.999", 1))
    assert results.read_rows(csv_path) == []


def test_a_results_file_without_the_check_column_is_still_read(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("model,dataset,seed,status,config_hash,test_hit@10\nA,d,1,ok,h,0.5\n")
    assert [r["model"] for r in results.read_rows(path)] == ["A"]


def test_two_runners_never_write_into_one_folder(tmp_path, fake, capsys):
    suite_path = write_suite(tmp_path / "s.yaml", ["SASRec"], [1])
    out = tmp_path / "out"
    with results.folder_lock(out):
        with pytest.raises(results.ResultsError, match="another benchmark runner .* is writing"):
            run_suite(load_suite(suite_path), out, command_prefix=fake["prefix"],
                      stream=io.StringIO())
        assert cli.main([str(suite_path), "--out", str(out)]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
        assert len(err) == 1 and "another benchmark" in err[0]
        assert not (out / results.CSV_NAME).exists() and calls_of(fake) == []
    summary = run_suite(load_suite(suite_path), out, command_prefix=fake["prefix"],
                        stream=io.StringIO())  # the lock was released
    assert summary.ran == 1


@pytest.mark.parametrize("setup, expected", [
    (lambda t: (t / "r").mkdir() or (t / "r" / "results.csv").write_bytes(b"\xff\xfe\x00bin"),
     "not UTF-8 text"),
    (lambda t: (t / "r").write_text("a file"), "it is a file, not a folder"),
    (lambda t: None, "no such file"),
])
def test_report_bad_folders(tmp_path, capsys, setup, expected):
    setup(tmp_path)
    code = cli.main(["report", str(tmp_path / "r")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and expected in err[0], err


def test_run_out_a_file_is_an_error(tmp_path, fake, capsys):
    suite_path = write_suite(tmp_path / "s.yaml", ["SASRec"], [1])
    (tmp_path / "taken").write_text("a file")
    code = cli.main([str(suite_path), "--out", str(tmp_path / "taken")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "it is a file, not a folder" in err[0], err


def _suite(tmp: Path, models: str, data: Path) -> Path:
    path = tmp / "suite.yaml"
    path.write_text(
        "description: dry-run checks\ntimeout_s: 60\nseeds: [1, 2]\n"
        f"common: {{epochs: 1, data_path: {data}}}\n"
        "datasets:\n  tiny: {MAX_ITEM_LIST_LENGTH: 10}\n"
        f"models:\n{models}"
    )
    return path


@pytest.mark.parametrize("models, expected", [
    ("  NoSuchModel: {}\n", "run NoSuchModel on tiny seed 1: unknown model 'NoSuchModel'"),
    ("  SASRec: {n_heads: 3, hidden_size: 64}\n",
     "run SASRec on tiny seed 1: config key 'n_heads' = 3 is not allowed: it must divide"),
    ("  SASRec: {num_layers: 2}\n",
     "config key 'num_layers' is not a key of model SASRec: it belongs to GRU4Rec"),
    ("  Pop: {}\n  SASRec: {learning_rate: 0}\n",
     "config key 'learning_rate' = 0"),
])
def test_dry_run_checks_each_runs_resolved_config(tmp_path, capsys, models, expected):
    from conftest import tiny_rows, write_inter

    data = write_inter(tmp_path / "data", "tiny", tiny_rows())
    code = cli.main([str(_suite(tmp_path, models, data)), "--out", str(tmp_path / "out"),
                     "--dry-run"])
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert captured.out == "" and not (tmp_path / "out").exists()


def test_dry_run_finds_missing_data(tmp_path, capsys):
    code = cli.main([str(_suite(tmp_path, "  SASRec: {}\n", tmp_path / "nodata")),
                     "--out", str(tmp_path / "out"), "--dry-run"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "dataset 'tiny' not found" in err[0], err


def test_dry_run_of_a_good_suite_prints_the_commands(tmp_path, capsys):
    from conftest import tiny_rows, write_inter

    data = write_inter(tmp_path / "data", "tiny", tiny_rows())
    code = cli.main([str(_suite(tmp_path, "  SASRec: {n_layers: 1}\n  Pop: {}\n", data)),
                     "--out", str(tmp_path / "out"), "--dry-run"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(captured.out.splitlines()) == 4  # 2 models x 2 seeds
