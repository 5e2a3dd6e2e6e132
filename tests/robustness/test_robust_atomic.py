"""Atomic files: no quoting, every malformed line an error with file:line, the rows read equal
the data lines (issue 22)."""

from __future__ import annotations

import pytest
from _robust import FAST, bad_input, inter_text
from conftest import fast_config, tiny_rows

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.data.atomic import check_rows_read


def _write(tmp, text: str, name: str = "tiny"):
    folder = tmp / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text(text, encoding="utf-8")
    return tmp / "data"


@pytest.mark.parametrize("quote", ['"', '"{}', '{}"', "'{}", '"{}"'])
def test_quotes_are_plain_characters_and_no_line_is_merged(tmp_path, quote):
    from recbole_sasrec_ext.config.plugin_config import Config
    from recbole_sasrec_ext.data import create_dataset

    rows = [list(r) for r in tiny_rows()]
    rows[5][1] = quote.format(rows[5][1])  # a quote at the start (or end) of a token
    rows[40][1] = quote.format(rows[40][1])
    data = _write(tmp_path, inter_text(rows))
    config = Config("SASRec", "tiny", config_dict=fast_config(data))
    dataset = create_dataset(config)
    assert len(dataset.inter_feat) == len(rows)  # one interaction per data line
    assert quote.format(rows[5][1].strip('"\'')) in dataset.field2token_id["item_id"]


def test_rows_read_must_equal_data_lines(tmp_path):
    from recbole_sasrec_ext.data.atomic import check_atomic_file

    path = _write(tmp_path, inter_text(tiny_rows())) / "tiny" / "tiny.inter"
    lines = check_atomic_file(path)
    assert lines == len(tiny_rows())
    check_rows_read(path, lines)
    with pytest.raises(PluginError, match=rf"tiny.inter: read {lines - 29} rows but the file has "
                                          rf"{lines} data lines"):
        check_rows_read(path, lines - 29)


@pytest.mark.parametrize("value, kind", [
    ("inf", "finite number"), ("-inf", "finite number"), ("Infinity", "finite number"),
    ("nan", "number"), ("1e999", "finite number"),
])
def test_timestamps_must_be_finite(tmp_path, capsys, value, kind):
    rows = [list(r) for r in tiny_rows()]
    rows[3][2] = value
    data = _write(tmp_path, inter_text(rows))
    bad_input(tmp_path, ["--dataset", "tiny", f"--data_path={data}", *FAST],
              f"tiny.inter:5: field 'timestamp' (float) is not a {kind}: '{value}'", capsys)


def test_a_lone_quote_is_not_a_parser_traceback(tmp_path, capsys):
    rows = [list(r) for r in tiny_rows()]
    rows[7][1] = '"'
    rows[8] = rows[8][:2]  # and a short line after it: reported with its line number
    data = _write(tmp_path, inter_text(rows))
    bad_input(tmp_path, ["--dataset", "tiny", f"--data_path={data}", *FAST],
              "tiny.inter:10: expected 3 columns (user_id, item_id, timestamp), found 2", capsys)
