"""Generated bad input (hypothesis): atomic files, command-line overrides, yaml config files and
recommend arguments give a result or one clean error (exit 2), never another exception, a merged
line or invalid JSON (issue 22)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.data.atomic import READ_CSV_STRICT, check_atomic_file, check_rows_read

FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
TOKEN = st.one_of(
    st.integers(0, 50).map(str),
    st.sampled_from(['"', "'", '"7', '7"', '"a b"', "inf", "-inf", "nan", "1e999", "", " ",
                     "\\", "#", "x,y", "\x00"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\t"),
            max_size=5),
)


@st.composite
def inter_files(draw) -> str:
    rows = draw(st.lists(st.lists(TOKEN, min_size=2, max_size=4), min_size=1, max_size=30))
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += ["\t".join(row) for row in rows]
    return "\n".join(lines) + "\n"


@FAST
@given(text=inter_files())
def test_a_checked_atomic_file_is_read_line_for_line(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.inter"
        path.write_text(text, encoding="utf-8")
        try:
            lines = check_atomic_file(path)
        except PluginError as exc:
            assert str(exc).startswith(str(path)) and "\n" not in str(exc)
            return
        for engine in ("c", "python"):  # the plugin's reader and RecBole's
            df = pd.read_csv(path, delimiter="\t", dtype=str, engine=engine, **READ_CSV_STRICT)
            try:
                check_rows_read(path, len(df))
            except PluginError as exc:  # never silent: a mismatch is a clean error
                assert "data lines" in str(exc)
                continue
            assert len(df) == lines


KEYS = st.sampled_from([
    "epochs", "learning_rate", "train_batch_size", "n_heads", "hidden_size", "topk", "metrics",
    "valid_metric", "eval_args", "MAX_ITEM_LIST_LENGTH", "loss_type", "num_layers", "seed",
    "use_gpu", "train_stride", "hidden_dropout_prob", "epoch", "zzz", "filter_seen",
])
VALUES = st.one_of(
    st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "[]", "[0, 10]", "{}", "{'mode': 'full'}", "'CE'", "BCE", "None",
                     "True", "[Hit]", "NDCG@10", "1e999", "nan", "{'split': 3}", "((", "'"]),
)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    from conftest import tiny_rows, write_inter

    return write_inter(tmp_path_factory.mktemp("fuzz") / "data", "tiny", tiny_rows())


@FAST
@given(overrides=st.dictionaries(KEYS, VALUES, max_size=3))
def test_generated_overrides_resolve_or_fail_cleanly(tiny_folder, overrides):
    from recbole_sasrec_ext.benchmark.dry_run import check_run
    from recbole_sasrec_ext.benchmark.suite import RunSpec

    spec = RunSpec("SASRec", "tiny", 1, {**overrides, "data_path": str(tiny_folder)})
    try:
        check_run(spec)  # the run's own parsing, Config and checks
    except PluginError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("run SASRec on tiny seed 1: ")


YAML_LINES = st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}: {v}", KEYS, VALUES.map(str)),
    st.sampled_from(["- a", "  x: 1", ": :", "epochs: 1", "epochs: 2", "{", "[1, 2",
                     "!!python/none", "a: !!binary AAAA", "\t- tab"]),
), max_size=5)


@FAST
@given(lines=YAML_LINES)
def test_generated_config_files_load_or_fail_with_their_name(lines):
    import yaml

    from recbole_sasrec_ext.config.plugin_config import load_yaml_mapping

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            data = load_yaml_mapping(str(path), yaml.FullLoader)
        except PluginError as exc:
            assert str(exc).startswith(str(path)) and "\n" not in str(exc)
            return
        keys = [line.split(":")[0] for line in lines if not line.startswith((" ", "\t"))]
        assert isinstance(data, dict) and len(set(data)) == len(data)
        assert not (keys.count("epochs") > 1 and "epochs" in data)  # a repeated key is an error


@pytest.fixture(scope="module")
def fuzz_checkpoint(tmp_path_factory, tiny_folder) -> Path:
    import os

    from conftest import fast_config

    from recbole_sasrec_ext import run

    folder = tmp_path_factory.mktemp("ckpt")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        summary = run("SASRec", "tiny", config_dict=fast_config(tiny_folder, epochs=1))
    finally:
        os.chdir(cwd)
    return folder / summary.checkpoint


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(users=st.one_of(st.sampled_from(["", ",", "all", "1", "1,1", "0", "[PAD]", "41"]),
                       st.text(max_size=6)),
       k=st.integers(-2, 100), exclude=st.booleans(), batch=st.integers(-1, 4))
def test_generated_recommend_arguments(fuzz_checkpoint, capsys, users, k, exclude, batch):
    from recbole_sasrec_ext.apps.recommend import main

    argv = ["--checkpoint", str(fuzz_checkpoint), "--users", users, "--k", str(k),
            "--batch-size", str(batch)] + (["--exclude-seen"] if exclude else [])
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if code == 2:
        assert out == "" and len([line for line in err.splitlines() if line.strip()]) == 1
        return
    assert code == 0
    for line in out.splitlines():
        row = json.loads(line, parse_constant=pytest.fail)  # no Infinity / NaN
        assert "[PAD]" not in row["items"] and len(row["items"]) <= k
