"""Helpers of the robustness suite: run an entry point in-process and check the one-line error,
its exit code and that nothing was written."""

from __future__ import annotations

from pathlib import Path

from conftest import tiny_rows, write_inter
from test_bad_input import FAST, HEADER  # noqa: F401 (re-exported)

#: A seconds-long run of a model without a sequence encoder (Pop): no transformer keys.
FAST_POP = ["--epochs=1", "--show_progress=False"]


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def good_data(tmp: Path, name: str = "tiny") -> Path:
    """``tmp/data`` holding the tiny data set ``name``."""
    return write_inter(tmp / "data", name, tiny_rows())


def inter_text(rows: list, header: str = HEADER) -> str:
    return "\n".join([header] + ["\t".join(map(str, r)) for r in rows]) + "\n"


def one_error(code: int, stderr: str, expected: str, want_code: int = 2) -> str:
    """Assert exit ``want_code`` and one ``error:`` line containing ``expected``; return it."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == want_code, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert expected in lines[0], lines[0]
    return lines[0]


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """``python -m recbole_sasrec_ext *argv`` in-process: (exit code, stdout, stderr)."""
    from recbole_sasrec_ext.apps.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def bad_input(tmp: Path, argv: list[str], expected: str, capsys, want_code: int = 2) -> str:
    """Run ``argv``; assert one error line with ``expected``, exit ``want_code``, no new file."""
    before = files(tmp)
    code, out, err = run_main(argv, capsys)
    line = one_error(code, err, expected, want_code)
    assert out == ""
    assert files(tmp) == before, sorted(map(str, files(tmp) - before))
    return line
