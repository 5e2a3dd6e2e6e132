"""Tests of the data converters (``recbole_sasrec_ext.convert`` and its CLI)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recbole_sasrec_ext.convert import ConversionError, Format, convert, kcore_filter
from recbole_sasrec_ext.convert import converters as conv
from recbole_sasrec_ext.convert.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEO = REPO_ROOT.parent / "shared" / "data" / "games-sasrec" / "Video.txt"
HEADER_3 = "user_id:token\titem_id:token\ttimestamp:float"
HEADER_4 = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def _run(tmp_path: Path, fmt: str, text: str, **kwargs) -> list[str]:
    source = _write(tmp_path, "source.txt", text)
    summary = convert(fmt, source, "ds", tmp_path / "out", **kwargs)
    return _lines(summary.inter_path)


# ----------------------------------------------------------------------------- round trips
def test_sasrec_keeps_file_order_and_writes_positions(tmp_path: Path) -> None:
    # users interleaved on purpose: position is the running count per user, in file order
    source = _write(tmp_path, "Video.txt", "1 10\n2 20\n1 11\n\n2 21\n1 12\n")
    summary = convert(Format.SASREC, source, "games", tmp_path / "out")
    assert summary.inter_path == tmp_path / "out" / "games" / "games.inter"
    assert (summary.users, summary.items, summary.interactions) == (2, 5, 5)
    assert _lines(summary.inter_path) == [
        HEADER_3, "1\t10\t0", "2\t20\t0", "1\t11\t1", "2\t21\t1", "1\t12\t2", ""]
    yaml = summary.yaml_path.read_text()
    assert summary.yaml_path == tmp_path / "out" / "games" / "games.yaml"
    for line in ["USER_ID_FIELD: user_id", "ITEM_ID_FIELD: item_id", "TIME_FIELD: timestamp",
                 "  inter: [user_id, item_id, timestamp]", f"# source: {source.resolve()}"]:
        assert line in yaml.split("\n")
    assert "RATING_FIELD" not in yaml and "--format sasrec" in yaml


def test_sasrec_accepts_crlf_tabs_and_padding(tmp_path: Path) -> None:
    assert _run(tmp_path, "sasrec", " 1\t7 \r\n  \r\n1   8\r\n2 9") == [
        HEADER_3, "1\t7\t0", "1\t8\t1", "2\t9\t0", ""]


def test_seqline_positions_and_ignored_deltas(tmp_path: Path) -> None:
    expected = [HEADER_3, "1\t5\t0", "1\t6\t1", "1\t7\t2", "2\t8\t0", "2\t5\t1", ""]
    assert _run(tmp_path / "a", "seqline", "1 5 6 7\n\n2 8 5\n") == expected
    assert _run(tmp_path / "b", "seqline", "1 5 6 7\t0 3 0\n2 8 5\t0 10\n") == expected


def test_seqline_cumulative_time_deltas(tmp_path: Path) -> None:
    lines = _run(tmp_path, "seqline", "1 5 6 7\t0 3 0\r\n2 8 5\t0 10\n", time_deltas=True)
    assert lines == [HEADER_3, "1\t5\t0", "1\t6\t3", "1\t7\t3", "2\t8\t0", "2\t5\t10", ""]


@pytest.mark.parametrize("text", ["1::10::5::978300760\n2::20::3.5::978300001\n1::11::4::5\n",
                                  "1\t10\t5\t978300760\n2\t20\t3.5\t978300001\n1\t11\t4\t5\n"])
def test_movielens_keeps_rating_and_time(tmp_path: Path, text: str) -> None:
    summary = convert("movielens", _write(tmp_path, "ratings.dat", text), "ml", tmp_path)
    assert _lines(summary.inter_path) == [
        HEADER_4, "1\t10\t5.0\t978300760", "2\t20\t3.5\t978300001", "1\t11\t4.0\t5", ""]
    assert "RATING_FIELD: rating" in summary.yaml_path.read_text()


def test_movielens_integral_ratings_written_as_integers(tmp_path: Path) -> None:
    assert _run(tmp_path, "movielens", "196\t242\t3\t881250949\n") == [
        HEADER_4, "196\t242\t3\t881250949", ""]


AMAZON_ROWS = [  # user, item, rating, time; "B" comes before "a" in string order
    ("a", "x", 5, 30), ("B", "y", 4, 20), ("a", "y", 3, 10), ("B", "z", 2, 20), ("a", "z", 1, 10)]
# sorted by (user, time), stable: B:y(20) B:z(20) a:y(10) a:z(10) a:x(30)
AMAZON_EXPECTED = [HEADER_4, "1\t1\t4\t20", "1\t2\t2\t20", "2\t1\t3\t10", "2\t2\t1\t10",
                   "2\t3\t5\t30", ""]


def test_amazon_csv_sorts_and_renumbers(tmp_path: Path) -> None:
    text = "".join(f"{u},{i},{r}.0,{t}\n" for u, i, r, t in AMAZON_ROWS)
    assert _run(tmp_path, "amazon", text, min_count=0) == AMAZON_EXPECTED


def test_amazon_csv_skips_2023_header(tmp_path: Path) -> None:
    text = "user_id,parent_asin,rating,timestamp\r\n" + "".join(
        f"{u},{i},{r},{t}\r\n" for u, i, r, t in AMAZON_ROWS)
    assert _run(tmp_path, "amazon", text, min_count=0) == AMAZON_EXPECTED


def test_amazon_ids_stay_strings(tmp_path: Path) -> None:
    lines = _run(tmp_path, "amazon", "u,01,5,1\nu,1,4,2\n", min_count=0)
    assert lines == [HEADER_4, "1\t1\t5\t1", "1\t2\t4\t2", ""]


def test_amazon_json_lines_both_key_sets_and_gzip(tmp_path: Path) -> None:
    records = []
    for n, (u, i, r, t) in enumerate(AMAZON_ROWS):
        if n % 2:  # 2023 dump: parent_asin wins over asin
            records.append({"user_id": u, "parent_asin": i, "asin": "other", "rating": r,
                            "timestamp": t, "text": "ok"})
        else:
            records.append({"reviewerID": u, "asin": i, "overall": float(r),
                            "unixReviewTime": t, "reviewText": "fine"})
    source = tmp_path / "reviews.json.gz"
    with gzip.open(source, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in records) + "\n\n")
    summary = convert("amazon", source, "amz", tmp_path / "out", min_count=0)
    assert _lines(summary.inter_path) == AMAZON_EXPECTED


def test_amazon_default_is_five_core(tmp_path: Path) -> None:
    core = [(f"u{u}", f"i{i}", 5, u * 10 + i) for u in range(5) for i in range(5)]
    extra = [("u0", "lonely", 5, 99), ("stranger", "i0", 5, 1)]
    summary = convert("amazon", _write(tmp_path, "r.csv", "".join(
        f"{u},{i},{r},{t}\n" for u, i, r, t in core + extra)), "amz", tmp_path / "out")
    assert (summary.users, summary.items, summary.interactions) == (5, 5, 25)


# ----------------------------------------------------------------------------- k-core
def _frame(pairs: str) -> pd.DataFrame:
    rows = [p.split("-") for p in pairs.split()]
    return pd.DataFrame({"user_id": [u for u, _ in rows], "item_id": [i for _, i in rows]})


KCORE_INPUT = "u1-i1 u1-i2 u2-i2 u2-i3 u3-i1 u3-i4 u4-i1 u4-i2"


def test_kcore_iterates_until_stable() -> None:
    # pass 1 drops i3 and i4 (1 row each); then u2 and u3 have 1 row left and go in pass 2;
    # i1 (u1, u4) and i2 (u1, u4) still have 2, so the 2-core is u1 and u4
    kept = kcore_filter(_frame(KCORE_INPUT), min_count=2)
    assert kept.equals(_frame("u1-i1 u1-i2 u4-i1 u4-i2"))


def test_kcore_single_pass_is_sasrec_script() -> None:
    kept = kcore_filter(_frame(KCORE_INPUT), min_count=2, max_passes=1)
    assert kept.equals(_frame("u1-i1 u1-i2 u2-i2 u3-i1 u4-i1 u4-i2"))


def test_kcore_is_off_below_two_and_rejects_bad_arguments() -> None:
    frame = _frame("u1-i1 u2-i2")
    assert kcore_filter(frame, 0).equals(frame) and kcore_filter(frame, 1).equals(frame)
    with pytest.raises(ValueError, match="min_count"):
        kcore_filter(frame, -1)
    with pytest.raises(ValueError, match="passes"):
        kcore_filter(frame, 2, max_passes=0)


def test_sasrec_min_count_keeps_source_positions(tmp_path: Path) -> None:
    # item 9 has one row and goes; user 1 keeps positions 0 and 2 (order is all that matters)
    lines = _run(tmp_path, "sasrec", "1 5\n1 9\n1 6\n2 5\n2 6\n", min_count=2)
    assert lines == [HEADER_3, "1\t5\t0", "1\t6\t2", "2\t5\t0", "2\t6\t1", ""]


# ----------------------------------------------------------------------------- bad rows
BAD_ROWS = [
    ("sasrec", "1 2\n1 2 3\n", 2, "expected 2 fields (user id item id), found 3"),
    ("sasrec", "1 2\n\n\n7\n", 4, "expected 2 fields"),
    ("sasrec", "1 2\n\n1 x\n", 3, "item id 'x' is not a non-negative integer"),
    ("sasrec", "1 2\n1.5 2", 2, "user id '1.5' is not a non-negative integer"),
    ("sasrec", "1 2\n-1 2\n", 2, "user id '-1'"),
    ("sasrec", "1 2\n1 1234567890123456789\n", 2, "at most 18 digits"),
    ("seqline", "1 2 3\n2 x 4\n", 2, "item id #1 'x' is not"),
    ("seqline", "1 2 3\n\n5\n", 3, "expected a user id and at least one item id"),
    ("seqline", "1 2 3\t0 a\n", 1, "time delta 'a'"),
    ("seqline", "1 2 3\t0 1\t2\n", 1, "more than one tab"),
    ("seqline", "1 2 3\n1 4\n", 2, "user 1 already has a line (line 1)"),
    ("movielens", "1::2::3::4\n1::2::x::4\n", 2, "rating 'x' is not a number"),
    ("movielens", "1\t2\t3\t4\n1\t2\t3\tabc\n", 2, "timestamp 'abc' is not a number"),
    ("movielens", "1::2::3\n", 1, "expected 4 fields"),
    ("movielens", "1::2::3::4\n1\t2\t3\t4\n", 2, "expected 4 fields"),
    ("amazon", "a,b,5,1\na,b,5\n", 2, "expected 4 fields"),
    ("amazon", "a,b,5,1\n\na,b,five,1\n", 3, "rating 'five' is not a number"),
    ("amazon", 'a,b,5,1\n"a",b,5,1\n', 2, "user id '\"a\"'"),
    ("amazon", '{"reviewerID": "a", "asin": "b", "overall": 5, "unixReviewTime": 1}\n{"reviewerID"',
     2, "bad JSON"),
    ("amazon", '{"reviewerID": "a", "asin": "b", "overall": 5, "unixReviewTime": 1}\n\n'
               '{"reviewerID": "a", "overall": 5, "unixReviewTime": 1}\n', 3,
     "missing key: none of parent_asin, asin"),
    ("amazon", '{"user_id": "a", "asin": "b", "rating": "great", "timestamp": 1}\n', 1,
     "overall/rating 'great' is not a number"),
    ("amazon", '{"user_id": "a", "asin": "b", "rating": 5, "timestamp": NaN}\n', 1,
     "is not a number"),
    ("amazon", '{"user_id": "a", "asin": "b", "rating": 5, "timestamp": 1}\n[1, 2]\n', 2,
     "expected a JSON object"),
]


@pytest.mark.parametrize(("fmt", "text", "line", "fragment"), BAD_ROWS)
def test_bad_row_names_file_and_line(tmp_path: Path, fmt: str, text: str, line: int,
                                     fragment: str) -> None:
    source = _write(tmp_path, "bad.txt", text)
    with pytest.raises(ConversionError) as info:
        convert(fmt, source, "ds", tmp_path / "out", min_count=0)
    assert info.value.line == line
    assert str(info.value).startswith(f"{source}:{line}: ")
    assert fragment in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing written, not even the folder


def test_invalid_utf8_names_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.txt"
    source.write_bytes(b"1 2\n1 3\n1 \xff\n")
    with pytest.raises(ConversionError, match=r"bad\.txt:3: not valid UTF-8"):
        convert("sasrec", source, "ds", tmp_path / "out")


@pytest.mark.parametrize("line", ["1 2 3", "1", "x 2", "1 2x", "1\x0c2", "1 ２", "1,2", "1 2 #c"])
def test_every_rejected_sasrec_line_gets_a_specific_reason(line: str) -> None:
    # the fast whole-text check and the per-line diagnosis must agree
    with pytest.raises(ConversionError) as info:
        conv._SASREC.check(f"1 2\n{line}\n3 4\n", Path("f.txt"))
    assert info.value.line == 2 and "malformed" not in str(info.value)


# ----------------------------------------------------------------------------- empty / atomic
def test_empty_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="contains no interactions"):
        _run(tmp_path, "sasrec", "\n  \n\n")


def test_everything_filtered_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="no interactions left after the 5-core filter"):
        _run(tmp_path, "amazon", "a,b,5,1\nc,d,4,2\n")
    assert not (tmp_path / "out").exists()


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    source = _write(tmp_path, "s.txt", "1 2\n")
    first = convert("sasrec", source, "ds", tmp_path)
    _write(tmp_path, "s.txt", "1 3\n")
    with pytest.raises(FileExistsError, match="already exists"):
        convert("sasrec", source, "ds", tmp_path)
    assert _lines(first.inter_path)[1] == "1\t2\t0"
    convert("sasrec", source, "ds", tmp_path, overwrite=True)
    assert _lines(first.inter_path)[1] == "1\t3\t0"


def test_failed_write_leaves_old_output_and_no_temp_file(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    source = _write(tmp_path, "s.txt", "1 2\n")
    summary = convert("sasrec", source, "ds", tmp_path)
    before = summary.inter_path.read_text()

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        convert("sasrec", source, "ds", tmp_path, overwrite=True)
    assert sorted(os.listdir(summary.inter_path.parent)) == ["ds.inter", "ds.yaml"]
    assert summary.inter_path.read_text() == before


def test_bad_name_and_option_combination(tmp_path: Path) -> None:
    source = _write(tmp_path, "s.txt", "1 2\n")
    with pytest.raises(ValueError, match="dataset name"):
        convert("sasrec", source, "../x", tmp_path)
    with pytest.raises(ValueError, match="time_deltas"):
        convert("sasrec", source, "ds", tmp_path, time_deltas=True)


# ----------------------------------------------------------------------------- CLI
def test_cli_success(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = _write(tmp_path, "s.txt", "1 2\n1 3\n")
    code = main(["--format", "sasrec", "--input", str(source), "--name", "g",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out == f"g: 1 users, 2 items, 2 interactions -> {tmp_path / 'g' / 'g.inter'}\n"


def test_cli_bad_input_and_existing_output(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    bad = _write(tmp_path, "bad.txt", "1 2\n1 2 3\n")
    args = ["--format", "sasrec", "--name", "g", "--out", str(tmp_path)]
    assert main(args + ["--input", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad}:2: expected 2 fields (user id item id), found 3 in '1 2 3'\n"
    good = _write(tmp_path, "good.txt", "1 2\n")
    assert main(args + ["--input", str(good)]) == 0
    assert main(args + ["--input", str(good)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--input", str(tmp_path / "missing.txt")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_cli_subprocess_exit_code_without_traceback(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.txt", "1 2\n1 x\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "recbole_sasrec_ext.convert", "--format", "sasrec", "--input",
         str(bad), "--name", "g", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {bad}:2: item id 'x'")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.skipif(not SHARED_VIDEO.exists(), reason="shared data not present")
def test_smoke_real_file_head(tmp_path: Path) -> None:
    with open(SHARED_VIDEO, encoding="utf-8") as handle:
        head = [next(handle) for _ in range(2000)]
    summary = convert("sasrec", _write(tmp_path, "Video.txt", "".join(head)), "g", tmp_path)
    assert summary.interactions == 2000
    first = _lines(summary.inter_path)[1:3]
    assert first == ["1\t6393\t0", "1\t13504\t1"]


# A meta-path finder that makes `import torch` (and recbole) fail, then the converter's imports.
_BLOCKED_IMPORT = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "recbole"):
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Block())
import recbole_sasrec_ext.convert
import recbole_sasrec_ext.convert.cli
from recbole_sasrec_ext.convert import convert
print("imported", "torch" in sys.modules)
"""


def test_converters_import_without_torch_or_recbole():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-c", _BLOCKED_IMPORT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "imported False"
