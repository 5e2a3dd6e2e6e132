"""``benchmark merge SRC DST``: the finished runs of a suite run in pieces in two folders (real Pop
runs on a tiny generated data set, one seed per folder) combined into one."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from conftest import tiny_suite_yaml

from recbole_sasrec_ext.benchmark import cli, results
from recbole_sasrec_ext.benchmark.merge import merge_folders
from recbole_sasrec_ext.benchmark.report import format_metric
from recbole_sasrec_ext.benchmark.runner import run_suite
from recbole_sasrec_ext.benchmark.suite import load_suite

SEEDS = (1, 2)


def _suite_yaml(folder: Path, description: str = "Pop on a tiny data set.") -> Path:
    return tiny_suite_yaml(
        folder, "tiny-suite.yaml", description=description, seeds=list(SEEDS),
        models={"Pop": {"epochs": 1, "train_neg_sample_args": None}},
        n_users=50, max_len=20, max_item_list_length=10,
    )


def _command(seed: int) -> str:
    return f"python -m recbole_sasrec_ext.benchmark tiny-suite.yaml --out s{seed} --seeds {seed}"


@pytest.fixture(scope="module")
def pieces(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """seed -> an output folder holding that seed's Pop run (read-only: tests copy it)."""
    tmp = tmp_path_factory.mktemp("pieces")
    suite = load_suite(_suite_yaml(tmp))
    folders = {}
    for seed in SEEDS:
        folders[seed] = tmp / f"s{seed}"
        summary = run_suite(suite, folders[seed], seeds=[seed], command_line=_command(seed),
                            stream=io.StringIO())
        assert (summary.ran, summary.failed) == (1, 0), folders[seed]
    return folders


def _copies(pieces: dict[int, Path], tmp_path: Path) -> tuple[Path, Path]:
    """(src, dst): copies of the seed-2 and the seed-1 folders."""
    return (Path(shutil.copytree(pieces[2], tmp_path / "src")),
            Path(shutil.copytree(pieces[1], tmp_path / "dst")))


def _rows(folder: Path) -> list[results.Row]:
    return results.read_rows(folder / results.CSV_NAME)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_merge_combines_both_seeds_with_their_files(
    pieces: dict[int, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src, dst = _copies(pieces, tmp_path)
    src_row, dst_row = _rows(src)[0], _rows(dst)[0]
    assert (src_row["seed"], dst_row["seed"]) == ("2", "1")

    assert cli.main(["merge", str(src), str(dst)]) == 0
    out, err = capsys.readouterr()
    assert out == f"merged 1 runs from {src} into {dst} (0 skipped: failed or incomplete)\n"
    assert err == ""

    merged = {r["seed"]: r for r in _rows(dst)}
    assert sorted(merged) == ["1", "2"]
    assert merged["1"] == dst_row and merged["2"] == src_row  # every cell, metrics included
    metrics = {k: float(v) for k, v in merged["2"].items() if k.startswith("test_")}
    assert set(metrics) == {"test_hit@5", "test_ndcg@5"} and all(0 <= v <= 1 for v in
                                                                  metrics.values())

    histories = {h.seed: h for h in results.read_histories(dst / results.HISTORIES_NAME)}
    src_history = results.read_histories(src / results.HISTORIES_NAME)[0]
    assert sorted(histories) == [1, 2] and histories[2] == src_history
    assert histories[2].valid_history  # Pop's one validation

    for seed, row in merged.items():
        assert row["per_user"].startswith(f"per_user/Pop-tiny-{seed}-"), row["per_user"]
        assert row["log"] == f"logs/Pop-tiny-{seed}.log"
    for column in ("per_user", "log"):
        copied = dst / src_row[column]
        assert copied.read_bytes() == (src / src_row[column]).read_bytes()

    meta = results.read_meta(dst)
    assert meta["commands"] == [_command(1), _command(2)]
    assert meta["suite"] == "tiny-suite" and meta["models"] == ["Pop"]

    report = (dst / "results.md").read_text()
    assert "- Runs in results.csv: 2 (2 ok, 0 failed)" in report
    assert f"`{_command(1)}`, `{_command(2)}`" in report
    ndcg = format_metric([float(merged[s]["test_ndcg@5"]) for s in ("1", "2")])
    assert "| Pop | 2 | " in report and ndcg in report

    # a second merge changes nothing
    before = _snapshot(dst)
    assert cli.main(["merge", str(src), str(dst)]) == 0
    assert capsys.readouterr().out.startswith("merged 1 runs from ")
    after = _snapshot(dst)
    for name in (results.CSV_NAME, results.HISTORIES_NAME, results.SUITE_META_NAME, "results.md"):
        assert after[name] == before[name], name
    assert _rows(dst) == [dst_row, src_row]


def test_failed_and_incomplete_rows_are_left_out_and_a_row_is_replaced(
    pieces: dict[int, Path], tmp_path: Path
) -> None:
    src, dst = _copies(pieces, tmp_path)
    ok = _rows(src)[0]
    newer_seed1 = {**_rows(dst)[0], "test_ndcg@5": "0.5", "date": "later"}
    failed = {**ok, "seed": "3", "status": "failed", "error": "timeout after 1 s"}
    incomplete = {**ok, "seed": "4", "test_ndcg@5": "nan"}
    results.write_rows(src / results.CSV_NAME, [ok, newer_seed1, failed, incomplete])

    summary = merge_folders(src, dst)

    assert (summary.merged, summary.skipped) == (2, 2)
    assert dst / "results.md" in summary.report
    rows = {r["seed"]: r for r in _rows(dst)}
    assert sorted(rows) == ["1", "2"]
    assert rows["1"]["test_ndcg@5"] == "0.5" and rows["1"]["date"] == "later"


def test_other_suite_or_same_folder_exits_2_and_writes_nothing(
    pieces: dict[int, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src, dst = _copies(pieces, tmp_path)
    meta = results.read_meta(src)
    results.write_meta(src, {**meta, "suite": "other-suite"})
    before = {folder: _snapshot(folder) for folder in (src, dst)}

    assert cli.main(["merge", str(src), str(dst)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {dst / 'suite.json'}: ")
    assert "'tiny-suite'" in err and "'other-suite'" in err

    same = src / ".." / dst.name  # dst, spelled otherwise
    assert cli.main(["merge", str(dst), str(same)]) == 2
    assert capsys.readouterr().err == (
        f"error: {same}: the source and the destination are the same folder\n"
    )

    (src / results.CSV_NAME).unlink()
    assert cli.main(["merge", str(src), str(dst)]) == 2
    assert capsys.readouterr().err == (
        f"error: {src / 'results.csv'}: no such file (not a benchmark output folder)\n"
    )
    assert _snapshot(dst) == before[dst]  # its .lock too: not even locked


def test_a_locked_folder_is_an_error(pieces: dict[int, Path], tmp_path: Path, capsys) -> None:
    src, dst = _copies(pieces, tmp_path)
    before = _snapshot(dst)
    with results.folder_lock(src):  # a runner writing into the source
        assert cli.main(["merge", str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another benchmark runner" in err and str(src) in err
    assert _snapshot(dst) == before


def test_a_run_with_changed_suite_settings_supersedes_the_old_row(
    pieces: dict[int, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The suite's entry for a model changed (new config_hash): the new run of the same model and
    seed replaces the old row, its history and its per-user file; other seeds are kept."""
    src, dst = _copies(pieces, tmp_path)
    old = _rows(dst)[0]
    new = {**old, "config_hash": "0123456789ab", "test_ndcg@5": "0.5",
           "per_user": old["per_user"].replace(old["config_hash"], "0123456789ab")}
    assert new["per_user"] != old["per_user"]
    shutil.copyfile(dst / old["per_user"], src / new["per_user"])
    history = results.read_histories(dst / results.HISTORIES_NAME)[0]
    results.write_histories(src / results.HISTORIES_NAME, [
        *results.read_histories(src / results.HISTORIES_NAME),
        results.HistoryEntry(history.model, history.dataset, history.seed, "0123456789ab",
                             history.valid_history, history.explanation)])
    results.write_rows(src / results.CSV_NAME, [*_rows(src), new])

    assert cli.main(["merge", str(src), str(dst)]) == 0
    assert capsys.readouterr().out.endswith(
        "(0 skipped: failed or incomplete); 1 runs made with other suite settings replaced\n")

    rows = {(r["seed"], r["config_hash"]): r for r in _rows(dst)}
    assert set(rows) == {("1", "0123456789ab"), ("2", _rows(src)[0]["config_hash"])}
    assert rows["1", "0123456789ab"]["test_ndcg@5"] == "0.5"
    keys = {(h.seed, h.config_hash) for h in results.read_histories(dst / results.HISTORIES_NAME)}
    assert keys == {(1, "0123456789ab"), (2, _rows(src)[0]["config_hash"])}
    assert not (dst / old["per_user"]).exists() and (dst / new["per_user"]).is_file()
    assert "- Runs in results.csv: 2 (2 ok, 0 failed)" in (dst / "results.md").read_text()
