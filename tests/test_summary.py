"""The run summary contract (``recbole_sasrec_ext.contract.summary``): JSON round trip, errors that
name the field, optional fields, and the README's generated table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from recbole_sasrec_ext.contract.summary import (
    SCHEMA_VERSION,
    Explanation,
    RunSummary,
    SummaryError,
    ValidationRecord,
    fields_markdown,
)

RECORD = ValidationRecord(
    epoch=0, train_seconds=1.25, valid_score=0.5, valid_result={"ndcg@10": 0.5}
)
EXPLANATION = Explanation(
    user="7", history=("3", "5"), recommended="11", attention=(0.25, 0.75),
    mixture={"co-occurrence": 0.5, "item": 0.3, "user": 0.2},
)


def summary(**changes) -> RunSummary:
    fields = dict(
        model="SASRec", implementation="recbole_sasrec_ext.models.sasrec.SASRec", dataset="ml-1m",
        seed=2020, protocol="uni100", best_valid_score=0.5, best_valid_result={"ndcg@10": 0.5},
        test_result={"hit@10": 0.75, "ndcg@10": 0.5}, train_seconds=1.25, fit_wall_seconds=2.5,
        epochs=1, best_epoch=0, seconds_per_epoch=1.25, peak_memory_mb=100.0,
        valid_history=(RECORD,), config_hash="abc", versions={"torch": "2.13.0"},
        checkpoint="saved/x.pth", device="cpu",
    )
    return RunSummary(**{**fields, **changes})


def test_json_round_trip_keeps_every_field_and_nested_records() -> None:
    original = summary(explanation=EXPLANATION, gpu="NVIDIA H100")
    text = original.to_json()
    assert "\n" not in text and json.loads(text)["schema_version"] == SCHEMA_VERSION
    again = RunSummary.from_json(text)
    assert again == original
    assert again.valid_history[0].valid_result == {"ndcg@10": 0.5}
    assert again.explanation.attention == (0.25, 0.75)


def test_optional_fields_default_to_none_when_absent() -> None:
    data = summary().to_dict()
    del data["gpu"], data["explanation"]
    loaded = RunSummary.from_dict(data)
    assert loaded.gpu is None and loaded.explanation is None


@pytest.mark.parametrize("field", ["test_result", "peak_memory_mb", "schema_version", "device"])
def test_a_missing_field_is_an_error_naming_it(field: str) -> None:
    data = summary().to_dict()
    del data[field]
    with pytest.raises(SummaryError, match=rf"^run summary: missing field '{field}'$"):
        RunSummary.from_dict(data)


def test_nested_and_malformed_fields_are_named() -> None:
    data = summary().to_dict()
    del data["valid_history"][0]["train_seconds"]
    with pytest.raises(SummaryError, match=r"missing field 'valid_history\[0\]\.train_seconds'"):
        RunSummary.from_dict(data)
    data = summary().to_dict()
    data["test_result"]["ndcg@10"] = "high"
    message = r"'test_result\.ndcg@10': expected a number, got 'high'"
    with pytest.raises(SummaryError, match=message):
        RunSummary.from_dict(data)
    data = summary().to_dict()
    data["epochs"] = True
    with pytest.raises(SummaryError, match="'epochs': expected an integer"):
        RunSummary.from_dict(data)
    with pytest.raises(SummaryError, match="not JSON"):
        RunSummary.from_json("{")


def test_another_schema_version_is_refused() -> None:
    data = summary().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SummaryError, match="'schema_version': 2 is not supported"):
        RunSummary.from_dict(data)


def test_non_finite_numbers_become_null() -> None:
    assert json.loads(summary(best_valid_score=float("nan")).to_json())["best_valid_score"] is None


def test_module_imports_neither_torch_nor_recbole() -> None:
    code = (
        "import sys, recbole_sasrec_ext.contract.summary; "
        "print(sorted({'torch', 'recbole'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- summary-fields:begin")[1].split("<!-- summary-fields:end -->")[0]
    assert block.split("\n", 1)[1].strip() == fields_markdown()
    for name in ("test_result", "valid_history[].valid_score", "explanation.mixture", "gpu"):
        assert f"| `{name}` |" in block
