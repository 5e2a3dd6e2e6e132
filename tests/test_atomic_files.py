"""Malformed atomic files are errors that name the file and line."""

import pytest

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.data import atomic
from recbole_sasrec_ext.data.atomic import check_atomic_file


def _file(tmp_path, text):
    path = tmp_path / "x.inter"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_passes(tmp_path):
    check_atomic_file(_file(
        tmp_path, "user_id:token\titem_id:token\trating:float\n1\t2\t3.5\n1\t3\t\n\n2\t4\t1\n"
    ))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("user_id\titem_id:token\n1\t2\n", "x.inter:1: bad header field 'user_id'"),
        ("user_id:token\titem_id:tokn\n1\t2\n", "x.inter:1: bad header field 'item_id:tokn'"),
        ("user_id:token\tuser_id:token\n1\t2\n", "x.inter:1: field 'user_id' appears twice"),
        ("user_id:token\titem_id:token\n1\t2\n3\t4\t5\n",
         "x.inter:3: expected 2 columns (user_id, item_id), found 3"),
        ("user_id:token\titem_id:token\n1\t2\n\n4\n", "x.inter:4: expected 2 columns"),
        ("user_id:token\titem_id:token\trating:float\n1\t2\t3\n1\t3\tfive\n",
         "x.inter:3: field 'rating' (float) is not a number: 'five'"),
        ("", "x.inter:1: missing header"),
        ("user_id:token\titem_id:token\n", "no data rows"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path, text, expected):
    with pytest.raises(PluginError) as err:
        check_atomic_file(_file(tmp_path, text))
    assert expected in str(err.value)


@pytest.mark.parametrize("block", [1, 4, 9, 1 << 23])
@pytest.mark.parametrize(
    "data, expected",
    [
        (b"user_id:token\ttime:float\r\n1\t2\r\n\r\n3\tx\r\n4\t5\t6\n",
         "x.inter:5: expected 2 columns"),
        (b"user_id:token\ttime:float\n1\t2\n\n3\tx\n4\t5\n",
         "x.inter:4: field 'time' (float) is not a number: 'x'"),
        (b"user_id:token\ttime:float\r1\t2\r3\t\x00\r", "x.inter:3: contains a NUL character"),
        (b"\xef\xbb\xbfuser_id:token\n1\n2\xff\n",
         "x.inter: not utf-8 text (invalid start byte at byte 20)"),
        (b"user_id:token\n1\n2\n3\n", None),
    ],
)
def test_blocks_of_lines_give_the_messages_of_the_whole_file(
    tmp_path, monkeypatch, block, data, expected
):
    # the file is checked in blocks of whole lines: line numbers and byte offsets stay the file's
    monkeypatch.setattr(atomic, "BLOCK_BYTES", block)
    path = tmp_path / "x.inter"
    path.write_bytes(data)
    if expected is None:
        check_atomic_file(path)
        return
    with pytest.raises(PluginError) as err:
        check_atomic_file(path)
    assert str(err.value).startswith(f"{path}{expected[len('x.inter'):]}")
