"""RecBole 1.2.1 on numpy 2, pandas 3, scipy >= 1.14, torch >= 2.6, without ray: the fixes that
``import recbole_sasrec_ext`` applies (recbole_sasrec_ext/compat.py, recbole_checkpoints.py)."""

import collections
import os
import subprocess
import sys
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import ROOT, fast_config, write_inter

from recbole_sasrec_ext import Config, compat, create_dataset
from recbole_sasrec_ext.compat import trainer as recbole_checkpoints
from recbole_sasrec_ext.compat.quick_start import load_data_and_model as recbole_load_data_and_model
from recbole_sasrec_ext.training import other_parameter


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=env,
    )


def test_numpy_aliases_recbole_needs(tiny_data):
    Config(
        "Pop", "tiny", config_dict={"data_path": str(tiny_data)}
    )  # RecBole's Config assigns np.float = np.float_

    assert np.float_ is np.float64 and np.unicode_ is np.str_ and np.complex_ is np.complex128
    assert np.float is np.float64  # recbole.evaluator.metrics uses np.float
    assert np.bool8 is np.bool_  # ray 2.6.3 reads np.bool8


def test_package_import_is_light_and_fixes_recbole_imported_later(tmp_path):
    code = (
        "import sys, numpy as np; import recbole_sasrec_ext;"
        "heavy = sorted(m for m in ('torch', 'pandas', 'scipy', 'recbole') if m in sys.modules);"
        "print('heavy', heavy); assert np.float_ is np.float64;"
        "from recbole.data.dataset.sequential_dataset import SequentialDataset as S;"
        "from recbole.trainer import Trainer; import scipy.sparse as sp;"
        "print(S._benchmark_presets._recbole_sasrec_ext_fix,"
        " Trainer._save_checkpoint._recbole_sasrec_ext_fix,"
        " sp.dok_matrix._update._recbole_sasrec_ext_fix)"
    )
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.splitlines() == [
        "heavy []",
        "pandas_agg_len torch_weights_only scipy_dok_update",
    ]


def test_modules_loaded_before_the_plugin_are_fixed_too(tmp_path):
    code = (
        # np.float_: what a user of plain RecBole would have to define
        "import numpy as np; np.float_ = np.float64;"
        "from recbole.data.dataset.kg_dataset import KnowledgeBasedDataset as K;"
        "assert not hasattr(K._reset_ent_remapID, '_recbole_sasrec_ext_fix');"
        "import recbole_sasrec_ext; print(K._reset_ent_remapID._recbole_sasrec_ext_fix)"
    )
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.strip() == "pandas_agg_len"


def test_apply_is_idempotent():
    from recbole.trainer import Trainer

    evaluate = Trainer.evaluate
    compat.apply()
    compat.apply()
    assert Trainer.evaluate is evaluate
    assert not hasattr(
        Trainer.evaluate.__wrapped__, "_recbole_sasrec_ext_fix"
    )  # wraps RecBole's, once
    assert sum(isinstance(f, compat._FixingFinder) for f in sys.meta_path) == 1


class _UsesAggLen:
    def lengths(self, series):
        return series.agg(len)


def test_agg_len_is_read_as_per_element_length():
    series = pd.Series([np.array([1, 2, 3]), np.array([4])])
    fixed = type("Fixed", (_UsesAggLen,), {"lengths": _UsesAggLen.__dict__["lengths"]})
    compat.dataset._agg_len_as_map(fixed, "lengths", 1)

    assert fixed().lengths(series).tolist() == [3, 1]
    assert _UsesAggLen().lengths(series) == 2  # pandas 3 itself: the length of the Series


def test_agg_len_fix_leaves_unknown_source_alone():
    fixed = type("Other", (_UsesAggLen,), {"lengths": _UsesAggLen.__dict__["lengths"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compat.dataset._agg_len_as_map(fixed, "lengths", 2)
    assert fixed.lengths is _UsesAggLen.lengths
    assert "expected 2 '.agg(len)', found 1" in str(caught[0].message)


def test_recbole_sequence_field_lengths_under_pandas_3(tmp_path):
    data = write_inter(
        tmp_path,
        "seqs",
        [(1, 2, 1.0, "a b c"), (1, 3, 2.0, "b"), (2, 2, 3.0, "c a"), (2, 3, 4.0, "a")],
        header="user_id:token\titem_id:token\ttimestamp:float\ttags:token_seq",
    )
    cfg = fast_config(data, load_col={"inter": ["user_id", "item_id", "timestamp", "tags"]})
    dataset = create_dataset(Config("GRU4Rec", "seqs", config_dict=cfg))
    tags = dataset.field2id_token["tags"]
    by_time = sorted(
        zip(dataset.inter_feat["timestamp"].tolist(), dataset.inter_feat["tags"].tolist())
    )
    assert [[tags[i] for i in row if i] for _, row in by_time] == [
        ["a", "b", "c"],
        ["b"],
        ["c", "a"],
        ["a"],
    ]


def test_missing_values_are_filled_under_pandas_3(tmp_path):
    # rating missing on line 3; a token_seq field missing on line 4
    data = write_inter(
        tmp_path,
        "gaps",
        [
            (1, 2, "", 1.0, "a b"),
            (1, 3, 4.0, 2.0, ""),
            (2, 2, 2.0, 3.0, "c"),
            (2, 3, 3.0, 4.0, "a"),
        ],
        header="user_id:token\titem_id:token\trating:float\ttimestamp:float\ttags:token_seq",
    )
    cfg = fast_config(
        data, load_col={"inter": ["user_id", "item_id", "rating", "timestamp", "tags"]}
    )
    dataset = create_dataset(Config("GRU4Rec", "gaps", config_dict=cfg))
    assert dataset.inter_feat is not None
    ratings = dataset.inter_feat["rating"]
    ratings = ratings.numpy() if hasattr(ratings, "numpy") else np.asarray(ratings)
    assert not np.isnan(ratings).any()
    assert 3.0 in np.round(ratings, 4)  # the mean of 4, 2, 3


def test_dok_matrix_update_as_in_old_scipy():
    matrix = sp.dok_matrix((2, 3), dtype=np.float32)
    matrix._update({(0, 2): 1.0, (1, 0): 2.0})
    assert matrix.toarray().tolist() == [[0.0, 0.0, 1.0], [2.0, 0.0, 0.0]]


def test_other_parameter_round_trips_through_a_weights_only_file(tmp_path):
    model = torch.nn.Module()
    model.layer = torch.nn.Linear(2, 2)
    ripple = collections.defaultdict(list, {np.int64(3): [([1, 2], [0], [5, 6])]})
    matrix = sp.csr_matrix(np.array([[0, 1.5], [2.0, 0]]))
    model.other_parameter = lambda: {
        "w": matrix,
        "sim": np.arange(4.0).reshape(2, 2),
        "cnt": torch.tensor([1, 2]),
        "top": np.float64(0.5),
        "ripple": ripple,
        "layer": model.layer,
        "none": None,
    }
    path = tmp_path / "other.pth"
    torch.save({"other_parameter": other_parameter.encode_other_parameter(model)}, path)
    back = other_parameter.decode_other_parameter(
        torch.load(path, weights_only=True)["other_parameter"]
    )

    assert sorted(back) == [
        "cnt",
        "none",
        "ripple",
        "sim",
        "top",
        "w",
    ]  # the sub-module is in state_dict
    assert back["w"].format == "csr" and back["w"].toarray().tolist() == [[0.0, 1.5], [2.0, 0.0]]
    assert back["sim"].tolist() == [[0.0, 1.0], [2.0, 3.0]] and back["top"] == 0.5
    assert back["cnt"].tolist() == [1, 2] and back["none"] is None
    assert back["ripple"][3] == [([1, 2], [0], [5, 6])] and back["ripple"][9] == []


def test_other_parameter_that_cannot_be_saved_weights_only_is_named():
    model = torch.nn.Module()
    model.other_parameter = lambda: {"ripple_set": {1: [object()]}}
    with pytest.raises(
        TypeError, match=r"other_parameter ripple_set\[1\]\[0\]: a object cannot be saved"
    ):
        other_parameter.encode_other_parameter(model)


def _recbole_config(model: str, data, **extra):
    from recbole.config import Config as RecBoleConfig

    cfg = {
        "data_path": str(data),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "epochs": 2,
        "show_progress": False,
        "state": "WARNING",
        "train_batch_size": 64,
        "eval_batch_size": 256,
        "checkpoint_dir": "saved",
    }
    return RecBoleConfig(model=model, dataset="tiny", config_dict={**cfg, **extra})


def _recbole_run(config):
    from recbole.data import create_dataset as recbole_dataset
    from recbole.data import data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    init_seed(config["seed"], config["reproducibility"])
    dataset = recbole_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train, valid, saved=True, show_progress=False)
    return trainer, model, test


def test_recbole_trainer_checkpoints_are_weights_only(tiny_data):
    trainer, model, test = _recbole_run(_recbole_config("BPR", tiny_data))
    state = torch.load(trainer.saved_model_file, weights_only=True)
    assert state["config"]["model"] == "BPR" and state["config"]["external"]["epochs"] == 2
    assert state["format"] == recbole_checkpoints.RECBOLE_CHECKPOINT_FORMAT

    best = trainer.evaluate(test, load_best_model=True)
    with torch.no_grad():
        model.user_embedding.weight.zero_()
    trainer.resume_checkpoint(trainer.saved_model_file)
    assert trainer.start_epoch == state["epoch"] + 1
    assert torch.equal(model.user_embedding.weight, state["state_dict"]["user_embedding.weight"])
    assert trainer.evaluate(test, load_best_model=False) == best

    config, loaded, *_ = recbole_load_data_and_model(trainer.saved_model_file)
    assert config["epochs"] == 2 and type(config).__module__ == "recbole.config.configurator"
    assert torch.equal(loaded.user_embedding.weight, state["state_dict"]["user_embedding.weight"])


def test_recbole_traditional_model_with_sparse_other_parameter(tiny_data):
    trainer, model, test = _recbole_run(_recbole_config("ItemKNN", tiny_data, k=5))
    expected = model.w.toarray()
    model.w = None
    result = trainer.evaluate(test, load_best_model=True)  # RecBole's TraditionalTrainer
    assert np.array_equal(model.w.toarray(), expected) and result["hit@10"] >= 0


class _FakeConfig(dict):
    def __init__(self, **values):
        super().__init__(**values)
        self.external_config_dict = {"pretrain_epochs": 1}
        self.final_config_dict = {"pretrain_epochs": 1, "device": torch.device("cpu")}


def test_pretrained_model_file_loads_with_torch_default(tmp_path):
    # S3Rec and RaCT fine-tuning read this file with a plain torch.load
    # (weights-only on torch >= 2.6)
    model = torch.nn.Linear(2, 1)
    model.other_parameter = lambda: None
    trainer = types.SimpleNamespace(
        config=_FakeConfig(model="S3Rec", dataset="tiny"),
        model=model,
        optimizer=torch.optim.Adam(model.parameters()),
    )
    path = tmp_path / "S3Rec-tiny-1.pth"
    recbole_checkpoints.save_pretrained_model(trainer, 1, str(path))

    state = torch.load(path)
    assert trainer.saved_model_file == str(path) and state["epoch"] == 1
    assert state["config"]["final"] == {"pretrain_epochs": 1, "device": "cpu"}
    assert torch.equal(state["state_dict"]["weight"], model.weight)


def test_plugin_trainer_keeps_its_own_checkpoints():
    from recbole.trainer import Trainer

    from recbole_sasrec_ext.training.trainer import PluginTrainer

    for name in ("_save_checkpoint", "resume_checkpoint", "evaluate"):
        assert not hasattr(PluginTrainer.__dict__[name], "_recbole_sasrec_ext_fix"), name
        assert hasattr(Trainer.__dict__[name], "_recbole_sasrec_ext_fix"), name


def test_pipeline_never_imports_ray(tiny_data):
    code = (
        "import sys; from recbole_sasrec_ext import run, Config, create_dataset, data_preparation;"
        f"run('Pop', 'tiny', config_dict={{'data_path': r'{tiny_data}', 'show_progress': False}});"
        "from recbole_sasrec_ext.compat import assert_no_ray; assert_no_ray(); print('ok')"
    )
    proc = _python(code, tiny_data)
    assert proc.stdout.strip().endswith("ok"), proc.stderr[-1500:]


def test_importing_recbole_sequential_models_leaves_anomaly_detection_off(tmp_path):
    """RecBole's sine.py turns on autograd anomaly detection at import; the plugin turns it off."""
    code = (
        "import recbole_sasrec_ext, torch\n"
        "import recbole.model.sequential_recommender  # imports sine.py\n"
        "print(torch.is_anomaly_enabled())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"
