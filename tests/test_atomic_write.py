"""The one atomic-write helper: a failed write leaves the old file and no temporary file."""

from __future__ import annotations

import os
import stat

import pytest

from recbole_sasrec_ext.benchmark.readme import BEGIN, END, embed
from recbole_sasrec_ext.common import atomic_write
from recbole_sasrec_ext.common.atomic_write import atomic_path, atomic_write_text


def test_write_replaces_with_open_permissions(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    mask = os.umask(0o022)
    try:
        atomic_write_text(target, "new\r\nline")
    finally:
        os.umask(mask)
    assert target.read_bytes() == b"new\r\nline"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_nested_pair_is_replaced_only_if_both_are_written(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with pytest.raises(RuntimeError), atomic_path(a) as ta, atomic_path(b) as tb:
        ta.write_text("A")
        tb.write_text("B")
        raise RuntimeError("second failed")
    assert os.listdir(tmp_path) == []


def test_readme_embed_leaves_no_temporary_file_on_error(tmp_path, monkeypatch):
    results = tmp_path / "quick"
    results.mkdir()
    (results / "results.md").write_text("# Quick\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"{BEGIN.format(name='quick')}\nold\n{END.format(name='quick')}\n")

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_write.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        embed(results, readme)
    assert "old" in readme.read_text()
    assert sorted(os.listdir(tmp_path)) == ["README.md", "quick"]
