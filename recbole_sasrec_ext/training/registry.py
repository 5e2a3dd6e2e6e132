"""Trainer look-up: the plugin's trainer wherever RecBole would train with its plain ``Trainer``."""

from __future__ import annotations

from recbole.trainer import Trainer
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_sasrec_ext.models.registry import base_model_name, get_model, is_plugin_model
from recbole_sasrec_ext.training.trainer import PluginTrainer


def get_trainer(model_type, model_name: str) -> type:
    """The plugin's trainer (weights-only checkpoints) wherever RecBole would use its plain
    ``Trainer``; RecBole's specialised trainers (knowledge graph, pre-training, ...) otherwise."""
    if is_plugin_model(get_model(model_name)):
        return PluginTrainer
    trainer = recbole_get_trainer(model_type, base_model_name(model_name))
    return PluginTrainer if trainer is Trainer else trainer
