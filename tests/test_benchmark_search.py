"""The validation search of a suite (``--search``): the same learning rate x dropout grid for
every searched model on one seed, the best validation setting chosen, and the suite's later runs
made with it (real runs of a tiny SASRec on a tiny generated data set)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import tiny_suite_yaml

from recbole_sasrec_ext.benchmark import cli, results
from recbole_sasrec_ext.benchmark.search import (
    SearchSpace,
    Variant,
    choose,
    variant_label,
    without_own_values,
)
from recbole_sasrec_ext.benchmark.suite import SuiteError, load_suite

SEARCH_BLOCK = """\
search:
  seed: 5
  learning_rate: [0.01, 0.001]
  dropout: [0.1, 0.3]
  models:
    SASRec: [hidden_dropout_prob, attn_dropout_prob]
"""


def _suite_yaml(folder: Path, search: str = SEARCH_BLOCK) -> Path:
    return tiny_suite_yaml(
        folder, "tiny-search.yaml",
        description="SASRec and Pop on a tiny data set, with a validation search.", seeds=[1],
        models={"Pop": {"epochs": 1, "train_neg_sample_args": None},
                "SASRec": {"hidden_size": 8, "inner_size": 8, "hidden_dropout_prob": 0.5}},
        n_users=40, max_len=12, max_item_list_length=8, common={"epochs": 2}, tail=search,
    )


def _rows(folder: Path) -> list[results.Row]:
    return results.read_rows(folder / results.CSV_NAME)


def test_the_search_block_expands_into_one_grid_per_searched_model(tmp_path: Path) -> None:
    suite = load_suite(_suite_yaml(tmp_path))
    assert suite.search == SearchSpace(5, (0.01, 0.001), (0.1, 0.3), {
        "SASRec": ("hidden_dropout_prob", "attn_dropout_prob")})
    plan = suite.search_suite().runs()
    assert [s.model for s in plan] == ["SASRec-lr0.01-do0.1", "SASRec-lr0.01-do0.3",
                                       "SASRec-lr0.001-do0.1", "SASRec-lr0.001-do0.3"]
    assert {s.seed for s in plan} == {5} and {s.model_class for s in plan} == {"SASRec"}
    first = plan[1].overrides  # the grid's values win over the model's own dropout
    assert (first["learning_rate"], first["hidden_dropout_prob"], first["attn_dropout_prob"],
            first["hidden_size"]) == (0.01, 0.3, 0.3, 8)
    assert plan[1].args()[:2] == ["--model", "SASRec"]
    # the suite's own plan is unchanged: one run per model and seed
    assert [s.model for s in suite.runs()] == ["Pop", "SASRec"]


@pytest.mark.parametrize("block, message", [
    ("search: {seed: 1, learning_rate: [0.1], dropout: [0.1], models: {SASRec: []}, x: 1}",
     "search.x: unknown key (allowed: seed, learning_rate, dropout, models)"),
    ("search: {seed: 1, learning_rate: [], dropout: [0.1], models: {SASRec: []}}",
     "search.learning_rate: must be a non-empty list of numbers > 0, got []"),
    ("search: {seed: 1, learning_rate: [0.1], dropout: [1.0], models: {SASRec: []}}",
     "search.dropout: must be a non-empty list of numbers [0, 1), got [1.0]"),
    ("search: {seed: 1, learning_rate: [0.1], dropout: [0.1], models: {GRU4Rec: []}}",
     "search.models.GRU4Rec: not a model of this suite (Pop, SASRec)"),
    ("search: {seed: 1, learning_rate: [0.1], dropout: [0.1]}", "search.models: missing"),
])
def test_a_bad_search_block_names_its_key_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, block: str, message: str
) -> None:
    path = _suite_yaml(tmp_path, block + "\n")
    with pytest.raises(SuiteError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("]", r"\]")):
        load_suite(path)
    out = tmp_path / "out"
    assert cli.main([str(path), "--out", str(out), "--search"]) == 2
    assert capsys.readouterr().err == f"error: {path}: {message}\n"
    assert not out.exists()


def test_choose_takes_the_best_validation_and_waits_for_every_setting() -> None:
    space = SearchSpace(5, (0.01, 0.001), (0.1,), {"SASRec": ("hidden_dropout_prob",),
                                                   "GRU4Rec": ("dropout_prob",)})

    def row(label: str, score: str, status: str = "ok", seed: str = "5") -> results.Row:
        return {"model": label, "seed": seed, "status": status, "best_valid_score": score}

    rows = [row("SASRec-lr0.01-do0.1", "0.2"), row("SASRec-lr0.001-do0.1", "0.3"),
            row("SASRec-lr0.01-do0.1", "0.9", seed="6"),  # another seed: not the search's
            row("GRU4Rec-lr0.01-do0.1", "0.4"), row("GRU4Rec-lr0.001-do0.1", "", "failed")]
    content = choose(space, rows)
    assert content["seed"] == 5 and list(content["models"]) == ["SASRec"]  # GRU4Rec unfinished
    chosen = content["models"]["SASRec"]
    assert chosen["settings"] == {"learning_rate": 0.001, "hidden_dropout_prob": 0.1}
    assert chosen["best_valid_score"] == 0.3
    assert [t["best_valid_score"] for t in chosen["tried"]] == [0.2, 0.3]
    tie = choose(space, [row("SASRec-lr0.01-do0.1", "0.3"), row("SASRec-lr0.001-do0.1", "0.3")])
    assert tie["models"]["SASRec"]["settings"]["learning_rate"] == 0.01  # first in grid order
    assert variant_label("Caser", {"learning_rate": 0.0005}) == "Caser-lr0.0005"
    assert Variant("SASRec", {}).settings == {}


def test_search_then_the_suite_runs_with_the_chosen_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path, out = _suite_yaml(tmp_path), tmp_path / "out"
    assert cli.main([str(path), "--out", str(out)]) == 0  # before any search: the file's settings
    before = {r["model"]: r for r in _rows(out)}
    assert "validation search not run" in capsys.readouterr().err

    assert cli.main([str(path), "--out", str(out), "--search"]) == 0
    err = capsys.readouterr().err
    assert "search: settings chosen for 1 of 1 models" in err
    done = [line for line in err.splitlines() if " ok in " in line]  # the search shows validation
    assert len(done) == 4 and all(": best validation " in line and "(epoch " in line
                                  for line in done)
    search_rows = _rows(out / "search")
    assert sorted(r["model"] for r in search_rows) == sorted(
        ["SASRec-lr0.01-do0.1", "SASRec-lr0.01-do0.3", "SASRec-lr0.001-do0.1",
         "SASRec-lr0.001-do0.3"])
    assert {r["seed"] for r in search_rows} == {"5"} and all(r["status"] == "ok"
                                                             for r in search_rows)
    chosen = json.loads((out / "search" / "chosen.json").read_text())["models"]["SASRec"]
    best = max(search_rows, key=lambda r: float(r["best_valid_score"]))
    assert chosen["best_valid_score"] == float(best["best_valid_score"])
    assert variant_label("SASRec", chosen["settings"]) == best["model"]

    assert cli.main([str(path), "--out", str(out), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    lr = chosen["settings"]["learning_rate"]
    # a chosen learning rate equal to SASRec's own (0.001, transformer.yaml) is no override
    assert (f"--learning_rate={lr}" in dry) == (lr != 0.001)
    assert "--hidden_dropout_prob=0.5" not in dry

    assert cli.main([str(path), "--out", str(out)]) == 0
    rows = _rows(out)
    assert sorted(r["model"] for r in rows) == ["Pop", "SASRec"]  # the old SASRec row replaced
    after = {r["model"]: r for r in rows}
    assert after["Pop"] == before["Pop"]  # not searched: skipped, unchanged
    assert after["SASRec"]["config_hash"] != before["SASRec"]["config_hash"]
    overrides = json.loads(after["SASRec"]["overrides"])
    assert {k: overrides.get(k, 0.001) for k in chosen["settings"]} == chosen["settings"]
    assert not (out / before["SASRec"]["per_user"]).exists()
    keys = {(h.model, h.config_hash) for h in results.read_histories(out / results.HISTORIES_NAME)}
    assert ("SASRec", before["SASRec"]["config_hash"]) not in keys
    report = (out / "results.md").read_text()
    assert "Validation search (seed 5, NDCG@5 on validation only)" in report
    assert "chosen: SASRec: attn_dropout_prob=" in report and f"learning_rate={lr:g}." in report


def test_a_chosen_value_equal_to_the_models_own_is_no_override() -> None:
    own = {"A": [{"learning_rate": 0.001, "dropout_prob": 0.3}],
           "B": [{"learning_rate": 0.001}, {"learning_rate": 0.0005}]}  # two data sets
    kept = without_own_values(
        {"A": {"learning_rate": 0.001, "dropout_prob": 0.5}, "B": {"learning_rate": 0.001}},
        lambda model: own[model])
    assert kept == {"A": {"dropout_prob": 0.5},  # lr is A's own: no override
                    "B": {"learning_rate": 0.001}}  # differs on the second data set: kept


def _write_choices(out: Path, settings: dict) -> None:
    (out / "search").mkdir(parents=True, exist_ok=True)
    content = {"seed": 5, "models": {"SASRec": {"settings": settings}}}
    (out / "search" / "chosen.json").write_text(json.dumps(content))


def test_choices_equal_to_the_models_own_settings_keep_its_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path, out = _suite_yaml(tmp_path), tmp_path / "out"
    assert cli.main([str(path), "--out", str(out)]) == 0
    before = _rows(out)
    # the plugin's learning rate (transformer.yaml) and the suite file's dropout: SASRec's own
    _write_choices(out, {"learning_rate": 0.001, "hidden_dropout_prob": 0.5})
    capsys.readouterr()
    assert cli.main([str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "the search chose SASRec's own settings: their runs keep their keys" in err
    assert "finished: 0 run now (0 failed), 2 already done, of 2 planned" in err
    assert _rows(out) == before
    # one value that differs: only it becomes an override, the equal one does not
    _write_choices(out, {"learning_rate": 0.001, "hidden_dropout_prob": 0.3})
    assert cli.main([str(path), "--out", str(out), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "--hidden_dropout_prob=0.3" in dry and "--learning_rate" not in dry


OWN_POINT_BLOCK = """\
search:
  seed: 1
  learning_rate: [0.01, 0.001]
  dropout: [0.1, 0.5]
  models:
    SASRec: [hidden_dropout_prob]
"""


def test_the_grid_point_of_the_models_own_settings_reuses_the_suites_row(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """lr 0.001 (transformer.yaml) with hidden dropout 0.5 (the suite file's) is SASRec's own
    setting: with the suite's seed-1 run finished, the search runs the other three points only."""
    path, out = _suite_yaml(tmp_path, OWN_POINT_BLOCK), tmp_path / "out"
    assert cli.main([str(path), "--out", str(out), "--search"]) == 0  # no suite rows yet: 4 runs
    assert len(_rows(out / "search")) == 4
    shutil.rmtree(out / "search")
    assert cli.main([str(path), "--out", str(out)]) == 0
    own = next(r for r in _rows(out) if r["model"] == "SASRec")
    capsys.readouterr()
    assert cli.main([str(path), "--out", str(out), "--search"]) == 0
    err = capsys.readouterr().err
    assert "search: SASRec-lr0.001-do0.5 is SASRec's own setting" in err
    assert sorted(r["model"] for r in _rows(out / "search")) == [
        "SASRec-lr0.001-do0.1", "SASRec-lr0.01-do0.1", "SASRec-lr0.01-do0.5"]
    tried = json.loads((out / "search" / "chosen.json").read_text())["models"]["SASRec"]["tried"]
    assert [t["best_valid_score"] for t in tried
            if t["settings"] == {"learning_rate": 0.001, "hidden_dropout_prob": 0.5}] == [
        float(own["best_valid_score"])]


def test_an_own_setting_off_the_grid_competes_and_wins_only_when_better() -> None:
    space = SearchSpace(5, (0.01, 0.001), (0.1,), {"GRU4Rec": ("dropout_prob",)})
    rows = [{"model": "GRU4Rec-lr0.01-do0.1", "seed": "5", "status": "ok",
             "best_valid_score": "0.2"},
            {"model": "GRU4Rec-lr0.001-do0.1", "seed": "5", "status": "ok",
             "best_valid_score": "0.3"}]
    better = choose(space, rows, {"GRU4Rec": 0.31})["models"]["GRU4Rec"]
    assert better["settings"] == {} and better["own"] is True
    assert better["best_valid_score"] == 0.31 and better["own_best_valid_score"] == 0.31
    assert [t["best_valid_score"] for t in better["tried"]] == [0.2, 0.3]
    for own in (0.3, 0.1):  # a tie (or an own point on the grid, which scores the same) or worse
        worse = choose(space, rows, {"GRU4Rec": own})["models"]["GRU4Rec"]
        assert worse["settings"] == {"learning_rate": 0.001, "dropout_prob": 0.1}
        assert worse["own"] is False and worse["best_valid_score"] == 0.3
    assert "own" not in choose(space, rows)["models"]["GRU4Rec"]  # no finished own run


def test_a_better_own_setting_off_the_grid_keeps_the_models_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """SASRec's own hidden dropout (0.5, the suite file's) is off the grid {0.1, 0.3}: when its
    finished run on the search seed scores above every grid point, the search keeps it."""
    path, out = _suite_yaml(tmp_path), tmp_path / "out"
    assert cli.main([str(path), "--out", str(out), "--seeds", "5"]) == 0
    assert cli.main([str(path), "--out", str(out), "--search"]) == 0
    rows = _rows(out)
    for row in rows:  # the own run made better than any grid point (a real score is <= 1)
        if row["model"] == "SASRec":
            row["best_valid_score"] = "1.5"
    results.write_rows(out / results.CSV_NAME, rows)
    capsys.readouterr()
    assert cli.main([str(path), "--out", str(out), "--search"]) == 0  # every point done
    assert "finished: 0 run now" in capsys.readouterr().err
    chosen = json.loads((out / "search" / "chosen.json").read_text())["models"]["SASRec"]
    assert chosen["settings"] == {} and chosen["own"] is True and len(chosen["tried"]) == 4
    assert cli.main([str(path), "--out", str(out), "--seeds", "5"]) == 0
    err = capsys.readouterr().err
    assert "SASRec: its own settings (better than every grid point)" in err
    assert "the search chose SASRec's own settings: their runs keep their keys" in err
    assert "finished: 0 run now (0 failed), 2 already done, of 2 planned" in err
    assert _rows(out) == rows


def test_search_refuses_seeds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, out = _suite_yaml(tmp_path), tmp_path / "out"
    assert cli.main([str(path), "--out", str(out), "--search", "--seeds", "1"]) == 2
    assert capsys.readouterr().err == (
        f"error: --seeds: not with --search (the search runs on {path}'s search.seed)\n")
    assert not (out / "search").exists()
