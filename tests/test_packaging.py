"""Every subpackage of the source tree ships in the wheel
(pyproject.toml lists packages by hand)."""

from __future__ import annotations

import pytest
from conftest import ROOT

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    source = ROOT / "recbole_sasrec_ext"
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in source.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
