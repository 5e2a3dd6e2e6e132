"""The plugin's ``Config``: RecBole's, plus the plugin's model defaults, its data-path rules and
one validation pass (RecBole-GNN's add-on convention)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import recbole
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_sasrec_ext.common.argv import swapped_argv
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.paths import properties_dir  # noqa: F401 (re-exported)
from recbole_sasrec_ext.config.validation import check_dataset_name, validate_config
from recbole_sasrec_ext.contract.keys import COMMON_KEYS, check_keys
from recbole_sasrec_ext.contract.model import PluginModel, declarations
from recbole_sasrec_ext.contract.plan import RunPlan
from recbole_sasrec_ext.data.atomic import reading_encoding
from recbole_sasrec_ext.data.device_loader import check_length_buckets
from recbole_sasrec_ext.evaluation.seen_items import check_filter_seen
from recbole_sasrec_ext.models.defaults import (  # noqa: F401 (model_yaml_chain re-exported)
    EXTENDS_KEY,
    model_yaml_chain,
    settle_training_negatives,
)
from recbole_sasrec_ext.models.registry import (
    base_model_name,
    get_model,
    implementation_name,
    is_plugin_model,
)
from recbole_sasrec_ext.parallel.group import ProcessGroupInfo, check_launcher_keys
from recbole_sasrec_ext.parallel.group import configure as configure_process

#: Where plugin data sets live unless ``data_path`` says otherwise (relative to the working dir).
DEFAULT_DATA_PATH = "datasets/"


def bundled_dataset_dir(dataset: str) -> Path:
    """Folder of a data set bundled inside the installed recbole package (ml-100k)."""
    return Path(recbole.__file__).resolve().parent / "dataset_example" / dataset


class Config(RecBoleConfig):
    """RecBole's ``Config`` for the plugin's pipeline.

    Differences from RecBole's:

    * ``model`` is resolved by :func:`recbole_sasrec_ext.models.registry.get_model` (plugin first;
      ``RecBole.<Name>`` for a built-in the plugin shadows);
    * defaults are read from the plugin's ``properties/overall.yaml``,
      ``properties/model/<Model>.yaml`` (after the yamls it ``extends``, see
      :func:`model_yaml_chain`) and ``properties/dataset/<dataset>.yaml`` (after RecBole's own,
      before user input);
    * ``data_path`` defaults to ``datasets/``; ``ml-100k`` falls back to the copy bundled with
      recbole when ``<data_path>/ml-100k`` does not exist;
    * sequential models that sample their own negatives or use CE get ``train_neg_sample_args: ~``
      unless the user set it; the time field is added to ``load_col`` when the
      ``.inter`` file has it;
    * the plugin's keys and a few core keys are validated once (:class:`PluginError` names the key);
      RecBole's multi-process keys (``local_rank``, ``world_size``, ...) are the launcher's, not
      the user's (:mod:`recbole_sasrec_ext.parallel`);
    * numpy 2 / pandas 3 compatibility is applied by :mod:`recbole_sasrec_ext.compat`, and
      command-line arguments that are not ``--key=value`` are ignored without a warning.
    """

    def __init__(
        self,
        model=None,
        dataset=None,
        config_file_list=None,
        config_dict=None,
        group: ProcessGroupInfo | None = None,
    ):
        self._group = group
        super().__init__(model, dataset, config_file_list, config_dict)
        sequential = self.final_config_dict["MODEL_TYPE"] == ModelType.SEQUENTIAL
        #: The run's decisions (:class:`RunPlan`), made once: the config is final from here on.
        self.plan: RunPlan = RunPlan.resolve(self.final_config_dict, sequential)

    def _load_cmd_line(self):
        overrides = [a for a in sys.argv[1:] if a.startswith("--") and len(a[2:].split("=")) == 2]
        with swapped_argv(sys.argv[:1] + overrides):
            return super()._load_cmd_line()

    def _load_config_files(self, file_list):
        merged = {}
        for file in file_list or []:
            merged.update(load_yaml_mapping(file, self.yaml_loader))
        return merged

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise PluginError(
                    "no model given: pass --model NAME or set 'model' in a config file"
                )
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise PluginError(
                    "no dataset given: pass --dataset NAME or set 'dataset' in a config file"
                )
        check_dataset_name(dataset)
        if isinstance(model, str):
            return model, get_model(model), dataset
        return model.__name__, model, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(base_model_name(model), model_class, dataset)
        props = properties_dir()
        files = [props / "overall.yaml", props / "dataset" / f"{dataset}.yaml"]
        if is_plugin_model(model_class):
            files[1:1] = model_yaml_chain(props / "model" / f"{model_class.__name__}.yaml")
        for file in files:
            if file.is_file():
                self._update_internal_config_dict(str(file))
                self.internal_config_dict.pop(EXTENDS_KEY, None)
        self.internal_config_dict["implementation"] = implementation_name(model_class)

    def _get_final_config_dict(self):
        # RecBole's, with a plugin model's defaults and training negatives settled by
        # recbole_sasrec_ext.compat.configurator (both Config routes); another sequential model
        # gets the same negatives rule here
        final = super()._get_final_config_dict()
        if not isinstance(self.model_class, PluginModel):
            self.notes: list[str] = []
            sequential = final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            settle_training_negatives(final, self.external_config_dict, sequential, None)
        return final

    def _set_default_parameters(self):
        user_path = self.final_config_dict.get("data_path") or DEFAULT_DATA_PATH
        path = Path(user_path) / self.dataset
        if not path.is_dir() and bundled_dataset_dir(self.dataset).is_dir():
            path = bundled_dataset_dir(self.dataset)
        inter = path / f"{self.dataset}.inter"
        separator = self.final_config_dict.get("field_separator", "\t")
        validate_config(self, inter_header_fields(inter, separator) if inter.is_file() else ())
        check_launcher_keys(self.external_config_dict)
        super()._set_default_parameters()
        self.final_config_dict["data_path"] = str(path)
        self._load_time_field()
        check_keys(self.final_config_dict, COMMON_KEYS)
        declared = declarations(self.model_class)
        check_keys(self.final_config_dict, declared.config_keys, declared.config_rules)
        check_filter_seen(self.final_config_dict)
        check_length_buckets(self.final_config_dict, self.model_class)
        encoding = self.final_config_dict.get("encoding")
        self.final_config_dict["encoding"] = reading_encoding(encoding)  # what RecBole reads with

    def _init_device(self):
        super()._init_device()
        if self._group is not None:  # this process's device and ranks in a multi-process run
            configure_process(self, self._group)

    def _load_time_field(self) -> None:
        """Add the time field to ``load_col`` when the ``.inter`` file has one."""
        inter = Path(self.final_config_dict["data_path"]) / f"{self.dataset}.inter"
        time_field = self.final_config_dict.get("TIME_FIELD")
        load_col = self.final_config_dict.get("load_col")
        if not (inter.is_file() and time_field and isinstance(load_col, dict)):
            return
        columns = inter_header_fields(inter, self.final_config_dict.get("field_separator", "\t"))
        inter_cols = load_col.get("inter")
        if time_field in columns and isinstance(inter_cols, list) and time_field not in inter_cols:
            load_col["inter"] = inter_cols + [time_field]


def inter_header_fields(path: os.PathLike, separator: str = "\t") -> list[str]:
    """Field names (without types) of an atomic file's header (a UTF-8 BOM is ignored)."""
    from recbole_sasrec_ext.data.atomic import read_header

    return [column.split(":")[0] for column in read_header(Path(path)).split(separator)]


def load_yaml_mapping(file: str, loader) -> dict:
    """A config file's mapping; a yaml error, a key given twice or a non-mapping is a one-line
    error naming the file (and line)."""
    import yaml

    from recbole_sasrec_ext.common.strict_yaml import unique_keys

    try:
        with open(file, encoding="utf-8-sig") as f:
            data = yaml.load(f.read(), Loader=unique_keys(loader))
    except UnicodeDecodeError as exc:
        raise PluginError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PluginError(f"{where}: not valid yaml ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        found = type(data).__name__
        raise PluginError(f"{file}:1: expected a mapping of config keys, found {found}")
    return data
