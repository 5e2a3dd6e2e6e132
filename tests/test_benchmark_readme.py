"""README sections are generated from results.md, between markers."""

import pytest

from recbole_sasrec_ext.benchmark.readme import BEGIN, END, embed


def test_embed_replaces_only_the_marked_section(tmp_path):
    results = tmp_path / "results" / "quick"
    results.mkdir(parents=True)
    (results / "results.md").write_text(
        "# Quick\n\n| model | ndcg@10 |\n|---|---|\n| SASRec | **0.0601** |\n"
    )
    (results / "metrics.png").write_bytes(b"png")
    readme = tmp_path / "README.md"
    readme.write_text(
        f"intro\n{BEGIN.format(name='quick')}\nold table\n{END.format(name='quick')}\noutro\n"
    )
    embed(results, readme)
    text = readme.read_text()
    assert "old table" not in text and "| SASRec | **0.0601** |" in text and "## Quick" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "![metrics.png](results/quick/metrics.png)" in text


def test_missing_markers_is_an_error(tmp_path):
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "results.md").write_text("# x\n")
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no markers for 'quick'"):
        embed(tmp_path / "quick", readme)


def test_the_readme_blocks_are_the_committed_results():
    """Every benchmark block of the project's README is exactly what ``benchmark.readme`` makes
    from the committed results folder of that name: no hand-typed or stale number."""
    import re
    from pathlib import Path

    from recbole_sasrec_ext.benchmark.readme import section

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    names = re.findall(r"<!-- benchmark:([\w-]+):begin", readme)
    assert {"beauty", "quick"} <= set(names)
    for name in names:
        begin, end = BEGIN.format(name=name), END.format(name=name)
        block = readme.split(begin, 1)[1].split(end, 1)[0].strip("\n")
        expected = section(root / "results" / name, root)
        assert block == expected, (f"README's '{name}' block is stale: run python -m "
                                   f"recbole_sasrec_ext.benchmark.readme results/{name} README.md")
