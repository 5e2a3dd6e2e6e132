"""RecBole 1.2.1 on numpy 2, pandas 3, torch >= 2.6, without ray."""

import subprocess
import sys

import numpy as np
from conftest import ROOT, fast_config, write_inter

from recbole_sasrec_ext import Config, create_dataset


def test_numpy_aliases_recbole_needs(tiny_data):
    Config("Pop", "tiny", config_dict={"data_path": str(tiny_data)})  # RecBole's Config assigns np.float = np.float_

    assert np.float_ is np.float64 and np.unicode_ is np.str_ and np.complex_ is np.complex128
    assert np.float is np.float64  # recbole.evaluator.metrics uses np.float


def test_missing_values_are_filled_under_pandas_3(tmp_path):
    # rating missing on line 3; a token_seq field missing on line 4
    data = write_inter(
        tmp_path, "gaps",
        [(1, 2, "", 1.0, "a b"), (1, 3, 4.0, 2.0, ""), (2, 2, 2.0, 3.0, "c"), (2, 3, 3.0, 4.0, "a")],
        header="user_id:token\titem_id:token\trating:float\ttimestamp:float\ttags:token_seq",
    )
    cfg = fast_config(data, load_col={"inter": ["user_id", "item_id", "rating", "timestamp", "tags"]})
    dataset = create_dataset(Config("GRU4Rec", "gaps", config_dict=cfg))
    assert dataset.inter_feat is not None
    ratings = dataset.inter_feat["rating"]
    ratings = ratings.numpy() if hasattr(ratings, "numpy") else np.asarray(ratings)
    assert not np.isnan(ratings).any()
    assert 3.0 in np.round(ratings, 4)  # the mean of 4, 2, 3


def test_pipeline_never_imports_ray(tiny_data):
    code = (
        "import sys; from recbole_sasrec_ext import run, Config, create_dataset, data_preparation;"
        f"run('Pop', 'tiny', config_dict={{'data_path': r'{tiny_data}', 'show_progress': False}});"
        "from recbole_sasrec_ext.compat import assert_no_ray; assert_no_ray(); print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tiny_data, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.stdout.strip().endswith("ok"), proc.stderr[-1500:]
