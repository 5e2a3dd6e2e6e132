"""``recbole.quick_start``: ``load_data_and_model`` for the weights-only checkpoints RecBole's
trainers write through :mod:`recbole_sasrec_ext.compat.trainer`."""

from __future__ import annotations

import sys

from recbole_sasrec_ext.common.argv import swapped_argv
from recbole_sasrec_ext.compat.patching import replace_attr
from recbole_sasrec_ext.compat.trainer import FORMATS, load_weights
from recbole_sasrec_ext.training import checkpoint


def load_data_and_model(model_file):
    """``recbole.quick_start.load_data_and_model`` for weights-only checkpoints: the ``Config``
    is rebuilt from the saved settings (RecBole's ``Config``; for plugin models use
    ``recbole_sasrec_ext.load_data_and_model``)."""
    from logging import getLogger

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_logger, init_seed

    state = checkpoint.load(model_file, formats=FORMATS)
    saved = state["config"]
    with swapped_argv(sys.argv[:1]):
        config = Config(
            model=saved["model"], dataset=saved["dataset"], config_dict=dict(saved["external"])
        )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    load_weights(model, state)
    return config, model, dataset, train_data, valid_data, test_data


def patch_quick_start(module) -> None:
    """Install :func:`load_data_and_model` into ``recbole.quick_start`` (and its package)."""
    if hasattr(module, "load_data_and_model"):
        replace_attr(module, "load_data_and_model", load_data_and_model, "torch_weights_only")
