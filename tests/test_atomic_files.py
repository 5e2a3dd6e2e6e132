"""Malformed atomic files are errors that name the file and line."""

import pytest

from recbole_sasrec_ext.data.atomic import check_atomic_file
from recbole_sasrec_ext.errors import PluginError


def _file(tmp_path, text):
    path = tmp_path / "x.inter"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_passes(tmp_path):
    check_atomic_file(_file(tmp_path, "user_id:token\titem_id:token\trating:float\n1\t2\t3.5\n1\t3\t\n\n2\t4\t1\n"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("user_id\titem_id:token\n1\t2\n", "x.inter:1: bad header field 'user_id'"),
        ("user_id:token\titem_id:tokn\n1\t2\n", "x.inter:1: bad header field 'item_id:tokn'"),
        ("user_id:token\tuser_id:token\n1\t2\n", "x.inter:1: field 'user_id' appears twice"),
        ("user_id:token\titem_id:token\n1\t2\n3\t4\t5\n", "x.inter:3: expected 2 columns (user_id, item_id), found 3"),
        ("user_id:token\titem_id:token\n1\t2\n\n4\n", "x.inter:4: expected 2 columns"),
        ("user_id:token\titem_id:token\trating:float\n1\t2\t3\n1\t3\tfive\n", "x.inter:3: field 'rating' (float) is not a number: 'five'"),
        ("", "x.inter:1: missing header"),
        ("user_id:token\titem_id:token\n", "no data rows"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path, text, expected):
    with pytest.raises(PluginError) as err:
        check_atomic_file(_file(tmp_path, text))
    assert expected in str(err.value)
