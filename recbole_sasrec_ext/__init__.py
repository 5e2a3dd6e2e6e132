"""recbole_sasrec_ext: a RecBole 1.2.1 plugin with the paper's SASRec and RKSA.

Everything a RecBole pipeline needs is importable from here::

    from recbole_sasrec_ext import Config, get_model, get_trainer, create_dataset, data_preparation, run
"""

from recbole_sasrec_ext import compat

compat.apply()

from recbole_sasrec_ext.config import Config  # noqa: E402
from recbole_sasrec_ext.data import create_dataset, data_preparation  # noqa: E402
from recbole_sasrec_ext.errors import PluginError  # noqa: E402
from recbole_sasrec_ext.quick_start import load_data_and_model, run  # noqa: E402
from recbole_sasrec_ext.registry import available_models, get_model, get_trainer  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Config",
    "PluginError",
    "available_models",
    "create_dataset",
    "data_preparation",
    "get_model",
    "get_trainer",
    "load_data_and_model",
    "run",
]
