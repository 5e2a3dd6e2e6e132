"""recommend and explain: clean errors, valid JSON always, no file written except where asked,
checkpoints usable from any folder (issue 22)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from _robust import files, one_error
from conftest import fast_config, tiny_rows, write_inter


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 1-epoch SASRec checkpoint of the tiny data set, trained with a relative data_path."""
    from recbole_sasrec_ext import run

    folder = tmp_path_factory.mktemp("train")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        write_inter(Path("data"), "tiny", tiny_rows())
        summary = run("SASRec", "tiny", config_dict=fast_config(Path("data"), epochs=1))
    finally:
        os.chdir(cwd)
    return folder / summary.checkpoint


def _main(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
    from importlib import import_module

    code = import_module(f"recbole_sasrec_ext.apps.{module}").main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_k_beyond_the_candidates_returns_them_all_as_valid_json(tiny_checkpoint, tmp_path,
                                                                capsys):
    code, out, err = _main("recommend", ["--checkpoint", str(tiny_checkpoint), "--users", "1,5",
                                         "--k", "100000", "--exclude-seen"], capsys)
    assert code == 0, err
    assert "Infinity" not in out and "NaN" not in out
    rows = [json.loads(line, parse_constant=pytest.fail) for line in out.splitlines()]
    seen = {1: 1, 5: None}
    for row in rows:
        assert "[PAD]" not in row["items"]
        assert len(row["items"]) == len(set(row["items"])) == len(row["scores"])
        assert all(isinstance(s, float) for s in row["scores"])
    assert len(rows[0]["items"]) == 30 - seen[1]  # user 1 saw one of the 30 items
    assert "is more than the candidate items" in err
    assert files(tmp_path) == set()  # no log/ in the working folder


@pytest.mark.parametrize("argv, expected", [
    (["--users", ""], "--users '': no user token given"),
    (["--users", " , ,"], "no user token given"),
    (["--users", "1", "--batch-size", "0"], "--batch-size 0 is not allowed"),
    (["--users", "1", "--k", "0"], "--k 0 is not allowed"),
    (["--users", "1", "--k", "-3"], "--k -3 is not allowed"),
    (["--users", "nobody"], "unknown user(s)"),
])
def test_recommend_bad_arguments(tiny_checkpoint, tmp_path, capsys, argv, expected):
    code, out, err = _main("recommend", ["--checkpoint", str(tiny_checkpoint), *argv], capsys)
    one_error(code, err, expected)
    assert out == "" and files(tmp_path) == set()


def _bad_checkpoint(tmp: Path, good: Path, change) -> Path:
    state = torch.load(good, weights_only=True)
    change(state)
    path = tmp / "changed.pth"
    torch.save(state, path)
    return path


def _wrong_shape(state):
    name = next(k for k, v in state["state_dict"].items() if v.dim() == 2)
    state["state_dict"][name] = torch.zeros(3, 3)


@pytest.mark.parametrize("change, expected", [
    (lambda s: s.pop("config"), "has no run configuration"),
    (lambda s: s.pop("data"), "has no data fingerprint"),
    (_wrong_shape, "its weights do not fit the model"),
])
def test_damaged_checkpoints(tiny_checkpoint, tmp_path, capsys, change, expected):
    path = _bad_checkpoint(tmp_path, tiny_checkpoint, change)
    before = files(tmp_path)
    for module, extra in (("recommend", ["--users", "1"]), ("explain", ["--out", "pics"])):
        code, out, err = _main(module, ["--checkpoint", str(path), *extra], capsys)
        one_error(code, err, expected)
        assert files(tmp_path) == before


def test_a_pickled_checkpoint_is_one_line(tmp_path, capsys):
    path = tmp_path / "pickled.pth"
    torch.save({"format": "recbole_sasrec_ext/1", "obj": Path("x")}, path)
    code, out, err = _main("recommend", ["--checkpoint", str(path), "--users", "1"], capsys)
    one_error(code, err, "cannot be loaded")


@pytest.mark.parametrize("extra, expected", [
    (["--max-users", "0"], "--max-users 0 is not allowed"),
    (["--max-users", "-2"], "--max-users -2 is not allowed"),
    (["--user", "nobody"], "unknown user(s)"),
])
def test_explain_bad_arguments(tiny_checkpoint, tmp_path, capsys, extra, expected):
    code, out, err = _main("explain", ["--checkpoint", str(tiny_checkpoint), "--out", "pics",
                                       *extra], capsys)
    one_error(code, err, expected)
    assert files(tmp_path) == set() and not (tmp_path / "pics").exists()


def test_explain_out_must_be_a_writable_folder(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    code, _, err = _main("explain", ["--checkpoint", str(tiny_checkpoint), "--out", "taken"],
                         capsys)
    one_error(code, err, "it is a file, not a folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable")
        code, _, err = _main("explain", ["--checkpoint", str(tiny_checkpoint),
                                         "--out", str(locked / "pics")], capsys)
        one_error(code, err, "is not writable")
    finally:
        locked.chmod(0o700)


def test_explain_writes_only_its_pictures(tiny_checkpoint, tmp_path, capsys):
    code, out, err = _main("explain", ["--checkpoint", str(tiny_checkpoint), "--out", "pics",
                                       "--max-users", "5"], capsys)
    assert code == 0, err
    assert {p.relative_to(tmp_path).parent for p in files(tmp_path)} == {Path("pics")}


def test_explain_of_a_model_without_attention_is_an_error(tmp_path, capsys):
    from recbole_sasrec_ext import run

    data = write_inter(tmp_path / "data", "tiny", tiny_rows())
    summary = run("Pop", "tiny", config_dict=fast_config(data, epochs=1))
    code, _, err = _main("explain", ["--checkpoint", summary.checkpoint, "--out", "pics"], capsys)
    one_error(code, err, "explain needs a model with attention blocks")


def test_batching_does_not_change_the_answer(tiny_checkpoint):
    from recbole_sasrec_ext.apps.recommend import Recommender

    rec = Recommender.load(tiny_checkpoint)
    users = [str(u) for u in range(1, 12)]
    small = rec.recommend(users, k=40, exclude_seen=True, batch_size=3)
    large = rec.recommend(users, k=40, exclude_seen=True, batch_size=1024)
    assert [r.user for r in small] == users == [r.user for r in large]
    for a, b in zip(small, large):  # the same items (float sums may differ in the last digit)
        assert set(a.items) == set(b.items) and len(a.items) == len(b.items)
        assert a.scores == pytest.approx(b.scores, abs=1e-4)
