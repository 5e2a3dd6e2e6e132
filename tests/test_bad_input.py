"""The bad-input matrix: every case exits 2 with one line on stderr that names the key or the
file (and line), and leaves no log, checkpoint, tensorboard or result file behind.

Most cases call the command line's ``main`` in-process (fast); a representative subset runs
``run_recbole.py`` as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, tiny_rows, write_inter

from recbole_sasrec_ext.apps.cli import EXIT_BAD_INPUT, main

HEADER = "user_id:token\titem_id:token\ttimestamp:float"
FAST = [
    "--epochs=1",
    "--show_progress=False",
    "--MAX_ITEM_LIST_LENGTH=10",
    "--hidden_size=16",
    "--inner_size=16",
]


def _text(rows: list[tuple], header: str = HEADER) -> str:
    return "\n".join([header] + ["\t".join(map(str, r)) for r in rows]) + "\n"


def _inter(tmp: Path, content: str | bytes) -> list[str]:
    folder = tmp / "data" / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    (folder / "tiny.inter").write_bytes(data)
    return [f"--data_path={tmp / 'data'}"]


def _good(tmp: Path) -> list[str]:
    write_inter(tmp / "data", "tiny", tiny_rows())
    return [f"--data_path={tmp / 'data'}"]


def _rows_with(n_per_user: int) -> list[tuple]:
    return [(u, i + u, i) for u in range(1, 21) for i in range(n_per_user)]


def _yaml(tmp: Path, text: str | bytes, name: str = "bad.yaml") -> list[str]:
    path = tmp / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return _good(tmp) + ["--config_files", str(path)]


def _checkpoint_file(tmp: Path, content: bytes) -> list[str]:
    path = tmp / "fake.pth"
    path.write_bytes(content)
    return _good(tmp) + [f"--resume={path}"]


def _log_is_a_file(tmp: Path) -> list[str]:
    (tmp / "log").write_text("not a folder")
    return _good(tmp)


def _file_as_dir(tmp: Path) -> list[str]:
    (tmp / "taken").write_text("not a folder")
    return _good(tmp) + [f"--checkpoint_dir={tmp / 'taken'}"]


# id -> (setup(tmp) -> extra argv, expected text in the one stderr line)
CASES = {
    # --- unknown keys (did you mean ...?) ---
    "typo learnin_rate": (
        lambda t: _good(t) + ["--learnin_rate=0.01"],
        "unknown config key 'learnin_rate': did you mean 'learning_rate'?",
    ),
    "typo epoch": (
        lambda t: _good(t) + ["--epoch=5"],
        "unknown config key 'epoch': did you mean 'epochs'?",
    ),
    "typo hiden_size": (lambda t: _good(t) + ["--hiden_size=8"], "did you mean 'hidden_size'?"),
    "typo eval_args sub-key": (
        lambda t: (
            _good(t) + ["--eval_args={'split':{'LS':'valid_and_test'},'ordr':'TO','mode':'full'}"]
        ),
        "unknown config key 'eval_args.ordr': did you mean 'eval_args.order'?",
    ),
    "unknown key no match": (lambda t: _good(t) + ["--zzzqqq=1"], "unknown config key 'zzzqqq'"),
    "typo in yaml file": (
        lambda t: _yaml(t, "learning_rat: 0.01\n"),
        "unknown config key 'learning_rat': did you mean 'learning_rate'?",
    ),
    # --- types and ranges ---
    "topk 0": (lambda t: _good(t) + ["--topk=0"], "config key 'topk' = 0"),
    "topk list with 0": (lambda t: _good(t) + ["--topk=[0,10]"], "config key 'topk' = [0, 10]"),
    "valid_metric cut-off not in topk": (
        lambda t: _good(t) + ["--valid_metric=NDCG@20"],
        "config key 'valid_metric' = 'NDCG@20'",
    ),
    "valid_metric not among metrics": (
        lambda t: _good(t) + ["--valid_metric=Recall@10"],
        "expected one of hit@10, mrr@10, ndcg@10",
    ),
    "unknown metric": (
        lambda t: _good(t) + ["--metrics=['Hitt']"],
        "config key 'metrics' = ['Hitt']",
    ),
    "n_heads not dividing hidden_size": (
        lambda t: _good(t) + ["--n_heads=3"],
        "config key 'n_heads' = 3 is not allowed: it must divide 'hidden_size' = 16",
    ),
    "learning_rate inf (overflow)": (
        lambda t: _good(t) + ["--learning_rate=1e999"],
        "config key 'learning_rate' = inf is not allowed: expected a finite number",
    ),
    "learning_rate inf (word)": (
        lambda t: _good(t) + ["--learning_rate=inf"],
        "config key 'learning_rate' = 'inf'",
    ),
    "learning_rate nan": (
        lambda t: _good(t) + ["--learning_rate=nan"],
        "config key 'learning_rate' = 'nan'",
    ),
    "learning_rate 0": (
        lambda t: _good(t) + ["--learning_rate=0"],
        "config key 'learning_rate' = 0",
    ),
    "learning_rate negative": (
        lambda t: _good(t) + ["--learning_rate=-0.1"],
        "config key 'learning_rate' = -0.1",
    ),
    "epochs negative": (lambda t: _good(t) + ["--epochs=-1"], "config key 'epochs' = -1"),
    "epochs float": (lambda t: _good(t) + ["--epochs=2.5"], "config key 'epochs' = 2.5"),
    "train_batch_size 0": (
        lambda t: _good(t) + ["--train_batch_size=0"],
        "config key 'train_batch_size' = 0",
    ),
    "eval_batch_size 0": (
        lambda t: _good(t) + ["--eval_batch_size=0"],
        "config key 'eval_batch_size' = 0",
    ),
    "dropout 1.5": (
        lambda t: _good(t) + ["--hidden_dropout_prob=1.5"],
        "config key 'hidden_dropout_prob' = 1.5",
    ),
    "loss_type MSE": (lambda t: _good(t) + ["--loss_type=MSE"], "config key 'loss_type' = 'MSE'"),
    "stopping_step 0": (
        lambda t: _good(t) + ["--stopping_step=0"],
        "config key 'stopping_step' = 0",
    ),
    "max length 0": (
        lambda t: _good(t) + ["--MAX_ITEM_LIST_LENGTH=0"],
        "config key 'MAX_ITEM_LIST_LENGTH' = 0",
    ),
    "seed negative": (lambda t: _good(t) + ["--seed=-1"], "config key 'seed' = -1"),
    "adam_betas one value": (
        lambda t: _good(t) + ["--adam_betas=[0.9]"],
        "config key 'adam_betas' = [0.9]",
    ),
    "weight_decay negative": (
        lambda t: _good(t) + ["--weight_decay=-1.0"],
        "config key 'weight_decay' = -1.0",
    ),
    "n_layers 0": (lambda t: _good(t) + ["--n_layers=0"], "config key 'n_layers' = 0"),
    "hidden_act tanh": (
        lambda t: _good(t) + ["--hidden_act=tanh"],
        "config key 'hidden_act' = 'tanh'",
    ),
    "show_progress not a bool": (
        lambda t: _good(t) + ["--show_progress=maybe"],
        "config key 'show_progress' = 'maybe'",
    ),
    "eval mode uni0": (
        lambda t: (
            _good(t) + ["--eval_args={'split':{'LS':'valid_and_test'},'order':'TO','mode':'uni0'}"]
        ),
        "config key 'eval_args.mode' = 'uni0'",
    ),
    "split not leave-one-out": (
        lambda t: (
            _good(t) + ["--eval_args={'split':{'RS':[0.8,0.1,0.1]},'order':'TO','mode':'full'}"]
        ),
        "config key 'eval_args.split'",
    ),
    "RecBole's own value check": (
        lambda t: (
            _good(t)
            + [
                "--model",
                "RecBole.SASRec",
                "--loss_type=CE",
                "--train_neg_sample_args={'distribution':'uniform','sample_num':1}",
            ]
        ),
        "bad configuration: train_neg_sample_args",
    ),
    # --- names and folders ---
    "dataset path traversal": (
        lambda t: _good(t) + ["--dataset", "../../../tmp/x"],
        "data set name '../../../tmp/x' is not allowed",
    ),
    "dataset with slash": (
        lambda t: _good(t) + ["--dataset", "a/b"],
        "data set name 'a/b' is not allowed",
    ),
    "dataset dot-dot": (
        lambda t: _good(t) + ["--dataset", "x..y"],
        "data set name 'x..y' is not allowed",
    ),
    "dataset missing": (
        lambda t: _good(t) + ["--dataset", "nowhere"],
        "dataset 'nowhere' not found: looked for",
    ),
    "checkpoint_dir is a file": (_file_as_dir, "config key 'checkpoint_dir'"),
    "per_user_file under a file": (
        lambda t: _file_as_dir(t)[:-1] + [f"--per_user_file={t / 'taken' / 'u.npz'}"],
        "config key 'per_user_file' = ",
    ),
    "per_user_file is a folder": (
        lambda t: _good(t) + [f"--per_user_file={t}"],
        "is not allowed: it is a folder, not a file",
    ),
    "log folder is a file": (_log_is_a_file, "log is a file: RecBole writes its log/ folder there"),
    "unknown model": (
        lambda t: _good(t) + ["--model", "NoSuchModel"],
        "unknown model 'NoSuchModel'",
    ),
    # --- atomic files ---
    "non-UTF-8 bytes": (
        lambda t: _inter(
            t,
            _text(tiny_rows()[:3]).encode()
            + b"7\t\xff\xfe\t1\n"
            + _text(tiny_rows()[3:]).split("\n", 1)[1].encode(),
        ),
        "tiny.inter: not utf-8 text (invalid start byte at byte",
    ),
    "non-UTF-8 in header": (
        lambda t: _inter(t, b"user_id:token\titem\xe9:token\n1\t2\n"),
        "tiny.inter:1: not utf-8 text",
    ),
    "user column renamed": (
        lambda t: _inter(t, _text(tiny_rows(), HEADER.replace("user_id", "uid"))),
        "tiny.inter:1: missing column 'user_id' (USER_ID_FIELD)",
    ),
    "item column renamed": (
        lambda t: _inter(t, _text(tiny_rows(), HEADER.replace("item_id", "item"))),
        (
            "missing column 'item_id' (ITEM_ID_FIELD); the header has user_id, item, timestamp; "
            "did you mean 'item'"
        ),
    ),
    "time column missing": (
        lambda t: _inter(t, _text([r[:2] for r in tiny_rows()], "user_id:token\titem_id:token")),
        "tiny.inter:1: missing column 'timestamp' (TIME_FIELD)",
    ),
    "bad header type": (
        lambda t: _inter(t, _text(tiny_rows(), HEADER.replace("token", "tokn", 1))),
        "tiny.inter:1: bad header field 'user_id:tokn'",
    ),
    "header without types": (
        lambda t: _inter(t, _text(tiny_rows(), "user_id\titem_id\ttimestamp")),
        "tiny.inter:1: bad header field 'user_id'",
    ),
    "row with a column too many": (
        lambda t: _inter(t, _text(tiny_rows()[:3]) + "1\t2\t3\t4\n"),
        "tiny.inter:5: expected 3 columns",
    ),
    "float field not a number": (
        lambda t: _inter(t, _text(tiny_rows()[:3]) + "1\t2\tsoon\n"),
        "tiny.inter:5: field 'timestamp' (float) is not a number: 'soon'",
    ),
    "NUL character": (
        lambda t: _inter(t, _text(tiny_rows()[:3]) + "1\t2\x00\t3\n"),
        "tiny.inter:5: contains a NUL character",
    ),
    "empty file": (lambda t: _inter(t, ""), "tiny.inter:1: missing header"),
    "header only": (
        lambda t: _inter(t, HEADER + "\n"),
        "tiny.inter: no data rows after the header",
    ),
    # --- split feasibility ---
    "every user has 2 interactions": (
        lambda t: _inter(t, _text(_rows_with(2))),
        "data set 'tiny': no user has a test example",
    ),
    "every user has 3 interactions": (
        lambda t: _inter(t, _text(_rows_with(3))),
        "data set 'tiny': no user has a validation example",
    ),
    # --- config files ---
    "malformed yaml": (
        lambda t: _yaml(t, "epochs: 2\nlearning_rate: [0.1\n"),
        "bad.yaml:3: not valid yaml",
    ),
    "yaml not a mapping": (
        lambda t: _yaml(t, "- epochs\n- 2\n"),
        "bad.yaml:1: expected a mapping of config keys, found list",
    ),
    "yaml not UTF-8": (lambda t: _yaml(t, b"epochs: 2\n# caf\xe9\n"), "bad.yaml: not UTF-8 text"),
    "config file missing": (
        lambda t: _good(t) + ["--config_files", "missing.yaml"],
        "config file not found: missing.yaml",
    ),
    # --- checkpoints ---
    "resume file missing": (
        lambda t: _good(t) + ["--resume=nothing.pth"],
        "checkpoint not found: nothing.pth",
    ),
    "resume file not a checkpoint": (
        lambda t: _checkpoint_file(t, b"not a torch file"),
        "fake.pth cannot be loaded",
    ),
}
SUBPROCESS = {
    "typo learnin_rate",
    "topk 0",
    "dataset path traversal",
    "non-UTF-8 bytes",
    "every user has 2 interactions",
    "malformed yaml",
}


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def _check(tmp_path: Path, code: int, stderr: str, expected: str, before: set[Path]) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == EXIT_BAD_INPUT, stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert expected in lines[0]
    assert "Traceback" not in stderr
    assert _files(tmp_path) == before  # no log/, saved/, log_tensorboard/ or any other file
    assert not Path("/tmp/x.log").exists() or "path traversal" not in expected


def test_matrix_has_at_least_40_cases():
    assert len(CASES) >= 60 and SUBPROCESS <= set(CASES)


@pytest.mark.parametrize("case", sorted(set(CASES) - SUBPROCESS))
def test_bad_input_in_process(case, tmp_path, capsys):
    setup, expected = CASES[case]
    args = setup(tmp_path)
    before = _files(tmp_path)
    argv = (["--dataset", "tiny"] if "--dataset" not in args else []) + FAST + args
    code = main(argv)
    _check(tmp_path, code, capsys.readouterr().err, expected, before)


@pytest.mark.parametrize("case", sorted(SUBPROCESS))
def test_bad_input_cli(case, tmp_path):
    setup, expected = CASES[case]
    args = setup(tmp_path)
    before = _files(tmp_path)
    argv = (["--dataset", "tiny"] if "--dataset" not in args else []) + FAST + args
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("RECBOLE_SASREC_EXT_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_recbole.py"), *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    _check(tmp_path, proc.returncode, proc.stderr, expected, before)
    assert proc.stdout == ""


def test_bom_is_stripped_and_the_run_works(tmp_path):
    from recbole_sasrec_ext.config.plugin_config import Config
    from recbole_sasrec_ext.data import create_dataset

    _inter(tmp_path, "\ufeff" + _text(tiny_rows()))
    config = Config(
        "SASRec",
        "tiny",
        config_dict={"data_path": str(tmp_path / "data"), "MAX_ITEM_LIST_LENGTH": 10},
    )
    dataset = create_dataset(config)
    assert dataset.uid_field == "user_id" and dataset.user_num == 41  # 40 users + padding
    assert "timestamp" in config["load_col"]["inter"]  # the header was read past the BOM


@pytest.mark.parametrize(
    "split, expected",
    [
        ({"LS": "valid_and_test"}, {"validation", "test"}),
        ({"LS": "valid_only"}, {"validation"}),
        ({"LS": "test_only"}, {"test"}),
        ({"RS": [0.8, 0.2, 0.0]}, {"validation"}),
        ("x", {"validation", "test"}),
    ],
)
def test_split_phases_that_must_not_be_empty(split, expected):
    from recbole_sasrec_ext.data.feasibility import expected_phases

    assert expected_phases(split) == expected
