"""``create_dataset`` and ``data_preparation`` for the plugin's pipeline (RecBole's, with the
plugin's data set classes, atomic-file checks and fixed evaluation negatives)."""

from __future__ import annotations

import importlib

from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import ModelType

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.contract.model import declarations
from recbole_sasrec_ext.contract.plan import plan_of
from recbole_sasrec_ext.data.atomic import check_dataset_files
from recbole_sasrec_ext.data.device_loader import DeviceTrainDataLoader, device_loader_applies
from recbole_sasrec_ext.data.feasibility import check_split
from recbole_sasrec_ext.data.fixed_sampler import FixedNegativeSampler
from recbole_sasrec_ext.data.full_sequence_dataset import FullSequenceDataset
from recbole_sasrec_ext.data.ordered_dataset import OrderedSequentialDataset

_RECBOLE_TYPE_TO_CLASS = {
    ModelType.GENERAL: "Dataset",
    ModelType.CONTEXT: "Dataset",
    ModelType.KNOWLEDGE: "KnowledgeBasedDataset",
    ModelType.TRADITIONAL: "Dataset",
    ModelType.DECISIONTREE: "Dataset",
}


def dataset_class_for(config) -> type:
    """The data set class a model declares (``DATASET_CLASS``: the plugin's models read
    :class:`FullSequenceDataset`); else RecBole's sequential models get
    :class:`OrderedSequentialDataset` (RecBole's prefix samples) and other models RecBole's choice.

    Raises
    ------
    PluginError
        If a model that reads targets at every position (``TARGETS_AT_EVERY_POSITION``) declares a
        data set class that does not provide them.
    """
    model_class = config.model_class
    declared_by_model = declarations(model_class)
    declared = declared_by_model.dataset_class
    if declared_by_model.targets_at_every_position and not (
        isinstance(declared, type) and issubclass(declared, FullSequenceDataset)
    ):
        raise PluginError(
            f"model {model_class.__name__} reads targets at every position but its DATASET_CLASS "
            f"{declared!r} is not a FullSequenceDataset"
        )
    if declared is not None:
        return declared
    module = importlib.import_module("recbole.data.dataset")
    special = getattr(module, model_class.__name__ + "Dataset", None)
    if special is not None:
        return special
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        return OrderedSequentialDataset
    return getattr(module, _RECBOLE_TYPE_TO_CLASS[config["MODEL_TYPE"]])


def create_dataset(config):
    """Check the atomic files, then build the data set (never from a stale cached ``.pth``)."""
    required = [(config[key], key) for key in ("USER_ID_FIELD", "ITEM_ID_FIELD") if config[key]]
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL and config["TIME_FIELD"]:
        required.append((config["TIME_FIELD"], "TIME_FIELD"))
    declared = config.external_config_dict.get("encoding")  # the user's name for messages
    encoding = check_dataset_files(
        config["data_path"], config["dataset"], config["load_col"],
        config["field_separator"], declared, required,
    )
    if config["encoding"] != encoding:  # RecBole's own Config of a model that is not the plugin's
        config["encoding"] = encoding  # (the plugin's Config and plugin models resolve it)
    return dataset_class_for(config)(config)


def _all_pairs(dataset):
    """Every (user, item) interaction of the whole data set, as numpy arrays."""
    pairs = getattr(dataset, "user_item_pairs", None)
    if pairs is not None:
        return pairs
    return (dataset.inter_feat[dataset.uid_field].numpy(),
            dataset.inter_feat[dataset.iid_field].numpy())


def data_preparation(config, dataset):
    """Split and wrap in RecBole's data loaders; ``uniNN`` evaluation uses fixed negatives.

    Returns
    -------
    (train_data, valid_data, test_data)
    """
    built = dataset.build()
    dataset.split_report = check_split(config, dataset, built)
    train_ds, valid_ds, test_ds = built
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)

    fixed: dict[int, FixedNegativeSampler] = {}
    for phase, num in plan_of(config).sampled_phases.items():
        if num not in fixed:
            users, items = _all_pairs(dataset)
            fixed[num] = FixedNegativeSampler(
                users, items, dataset.user_num, dataset.item_num, num, config["eval_neg_seed"]
            )
        if phase == "valid":
            valid_sampler = fixed[num].set_phase(phase)
        else:
            test_sampler = fixed[num].set_phase(phase)

    train_loader = get_dataloader(config, "train")
    if device_loader_applies(config, train_ds):
        train_loader = DeviceTrainDataLoader  # batches built on the device (length_buckets)
    train_data = train_loader(config, train_ds, train_sampler, shuffle=config["shuffle"])
    valid_data = get_dataloader(config, "valid")(config, valid_ds, valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, test_ds, test_sampler, shuffle=False)
    return train_data, valid_data, test_data
