"""What SASRec and RKSA share: embeddings, the block stack, losses and scoring.

A subclass supplies only its attention layer (:meth:`build_attention`) and, if it needs more
than the validity mask, the attention inputs (:meth:`attention_inputs`).
"""

from __future__ import annotations

from functools import cache
from logging import getLogger

import torch
from recbole.data.interaction import Interaction
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.contract.keys import (
    N_HEADS_DIVIDES_HIDDEN,
    OWN_NEGATIVES_PER_SEQUENCE,
    TRAIN_STRIDE_AT_MOST_WINDOW,
    Key,
)
from recbole_sasrec_ext.contract.model import separate_kv
from recbole_sasrec_ext.data.device_loader import length_class_rows
from recbole_sasrec_ext.data.full_sequence_dataset import TARGET_LIST_FIELD, FullSequenceDataset
from recbole_sasrec_ext.layers.block import ACTIVATIONS, NormPlacement, TransformerBlock
from recbole_sasrec_ext.layers.embedding import POSITION_ORDERS, SequenceEmbedding
from recbole_sasrec_ext.layers.losses import (
    LossType,
    ce_loss,
    next_item_loss,
    sequence_sampled_softmax_loss,
)
from recbole_sasrec_ext.layers.output_items import OutputEmbedding, OutputItems
from recbole_sasrec_ext.models.defaults import Recipe

#: The keys of every transformer recommender of the plugin (documented in properties/model/*.yaml).
TRANSFORMER_KEYS: tuple[Key, ...] = (
    Key("hidden_size", int, low=1),
    Key("n_layers", int, low=1),
    Key("n_heads", int, low=1),
    Key("inner_size", int, low=1),
    Key("hidden_dropout_prob", float, low=0.0, high=1.0, high_open=True),
    Key("attn_dropout_prob", float, low=0.0, high=1.0, high_open=True),
    Key("hidden_act", str, choices=tuple(ACTIVATIONS)),
    Key("layer_norm", str, choices=tuple(p.value for p in NormPlacement)),
    Key("layer_norm_eps", float, low=0.0, low_open=True),
    Key("scale_embedding", bool),
    Key("position_order", str, choices=tuple(POSITION_ORDERS)),
    Key("init", str, choices=("xavier", "normal")),
    Key("init_std", float, low=0.0, low_open=True),
    Key("loss_type", str, choices=tuple(t.value for t in LossType)),
    Key("n_negatives", int, low=1),
    Key("gbce_t", float, low=0.0, high=1.0),
    Key("negatives_per", str, choices=("batch", "sequence")),
    Key("exclude_own_negatives", bool),
    Key("label_smoothing", float, low=0.0, high=1.0, high_open=True),
    Key("output_embedding", str, choices=tuple(v.value for v in OutputEmbedding)),
    Key("bf16", bool),
    Key("train_stride", int, low=0),
    Key("recipe", str, choices=tuple(r.value for r in Recipe)),
)


@cache
def _note_prefix_samples() -> None:
    """Say once per process (cached) that the model trains on RecBole's prefix samples,
    and the faster way."""
    getLogger().warning(
        "training on RecBole's prefix samples (one loss per sample, at its last position); the "
        "plugin's full-sequence data trains about MAX_ITEM_LIST_LENGTH times less work "
        "per epoch: "
        "build the data with recbole_sasrec_ext.create_dataset/data_preparation (or run "
        "`python -m recbole_sasrec_ext --model ...`)"
    )


class TransformerRecommender(SequentialRecommender):
    """Self-attentive next-item model trained with a loss at every position of each sequence.

    Reads :data:`TARGET_LIST_FIELD` (the next item of every input position) from
    :class:`~recbole_sasrec_ext.data.FullSequenceDataset`. Scores are dot products with the shared
    item embedding.
    """

    input_type = InputType.POINTWISE
    CONFIG_KEYS = TRANSFORMER_KEYS
    CONFIG_RULES = (
        N_HEADS_DIVIDES_HIDDEN, TRAIN_STRIDE_AT_MOST_WINDOW, OWN_NEGATIVES_PER_SEQUENCE
    )
    DATASET_CLASS = FullSequenceDataset  # one row per user, the next item at every position
    TARGETS_AT_EVERY_POSITION = True  # calculate_loss reads TARGET_LIST_FIELD
    ONE_PASS = False
    NEEDS_TRAINING_NEGATIVES = False  # every loss of the plugin draws its own negatives (or none)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = config["hidden_size"]
        self.loss_type = LossType(config["loss_type"])
        self.n_negatives = config["n_negatives"]
        self.gbce_t = config["gbce_t"]
        self.negatives_per = config["negatives_per"]
        self.exclude_own_negatives = bool(config["exclude_own_negatives"])
        self.label_smoothing = float(config["label_smoothing"])
        self.bf16 = config["bf16"]
        self.length_split = bool(config["length_split"])
        self.embedding = SequenceEmbedding(
            self.n_items,
            self.max_seq_length,
            d,
            config["hidden_dropout_prob"],
            config["scale_embedding"],
            config["position_order"],
        )
        placement = NormPlacement(config["layer_norm"])
        attentions = [self.build_attention(config) for _ in range(config["n_layers"])]
        if placement is NormPlacement.SASREC and not separate_kv(attentions[0]):
            raise PluginError(
                f"config key 'layer_norm' = 'sasrec' is not allowed for {type(self).__name__}: its "
                "attention cannot take keys/values apart from the queries; use 'pre' or 'post'"
            )
        self.blocks = nn.ModuleList(
            TransformerBlock(
                attention,
                d,
                config["inner_size"],
                config["hidden_dropout_prob"],
                config["hidden_act"],
                placement,
                config["layer_norm_eps"],
            )
            for attention in attentions
        )
        self.final_norm = (nn.LayerNorm(d, eps=config["layer_norm_eps"]) if placement.final_norm
                           else nn.Identity())
        self.output = OutputItems(self.n_items, d, OutputEmbedding(config["output_embedding"]))
        self.init_std = config["init_std"] if config["init"] == "normal" else None
        self.apply(self._init_weights)

    # --- to override -------------------------------------------------------------------------
    def build_attention(self, config) -> nn.Module:
        """A new attention layer for one block."""
        raise NotImplementedError

    def attention_inputs(self, interaction, item_seq: torch.Tensor, e: torch.Tensor) -> dict:
        """Keyword inputs of the attention layer besides the block input."""
        return {"valid": item_seq > 0}

    # --- shared ------------------------------------------------------------------------------
    def _init_weights(self, module: nn.Module) -> None:
        """Xavier-normal (``init: xavier``) or normal(0, ``init_std``) (``init: normal``, SASRec+)
        weights for linear and embedding layers; zero biases and padding row."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            if self.init_std is None:
                nn.init.xavier_normal_(module.weight)
            else:
                nn.init.normal_(module.weight, mean=0.0, std=self.init_std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    def encode(self, interaction) -> tuple[torch.Tensor, list]:
        """Hidden states at every position (B, L, d) and each block's attention output."""
        item_seq = interaction[self.ITEM_SEQ]  # (B, L)
        x, e = self.embedding(item_seq, interaction[self.ITEM_SEQ_LEN])  # (B, L, d) x2
        inputs = self.attention_inputs(interaction, item_seq, e)
        extras = []
        with torch.autocast(device_type=item_seq.device.type, dtype=torch.bfloat16,
                            enabled=self.bf16):
            for block in self.blocks:
                x, att = block(x, **inputs)  # (B, L, d)
                extras.append(att)
        return self.final_norm(x.float()), extras

    def forward(self, interaction) -> torch.Tensor:
        return self.encode(interaction)[0]  # (B, L, d)

    def encode_by_length(self, interaction) -> tuple[torch.Tensor, list]:
        """:meth:`encode` computed in parts (``length_split``): the rows grouped by length class
        (1, 2, 3–4, 5–8, ... items), each part cut after its own longest sequence, its hidden
        states put back at the rows' places (zeros past a part's width). Every real position gets
        what :meth:`encode` gives it (a row attends only to its own items, and a causal one only
        to earlier ones), without most of the work on padding; no loss reads a padding position.
        The attention outputs are not returned (models with an auxiliary loss refuse
        ``length_split``)."""
        parts = length_class_rows(interaction[self.ITEM_SEQ_LEN])  # [(b,), ...]
        if len(parts) == 1:
            return self.encode(interaction)
        batch, width = interaction[self.ITEM_SEQ].shape
        hidden = None
        for index in parts:
            part, _ = self.encode(self.trimmed(interaction[index]))  # (b, w, d)
            if hidden is None:
                hidden = part.new_zeros(batch, width, part.size(-1))  # (B, L, d)
            hidden[index, : part.size(1)] = part
        return hidden, []

    def trimmed(self, interaction) -> Interaction:
        """The batch cut after its longest sequence: every (B, L) field keeps its first
        ``max(item_length)`` columns. Exact for every valid position (right padding, causal
        attention, positions that do not depend on the padded width), and no work on the columns
        that hold only padding."""
        item_seq = interaction[self.ITEM_SEQ]  # (B, L)
        width = int(interaction[self.ITEM_SEQ_LEN].max())
        if width >= item_seq.size(1):
            return interaction
        full = item_seq.size(1)
        return Interaction({
            field: value[:, :width] if value.dim() == 2 and value.size(1) == full else value
            for field, value in interaction.interaction.items()
        })

    def auxiliary_loss(self, extras: list) -> torch.Tensor | float:
        """Extra loss terms from the attention layers (none for SASRec)."""
        return 0.0

    def calculate_loss(self, interaction) -> torch.Tensor:
        interaction = self.trimmed(interaction)
        hidden, extras = (self.encode_by_length(interaction) if self.length_split
                          else self.encode(interaction))  # (B, L, d)
        if (TARGET_LIST_FIELD in interaction and self.negatives_per == "sequence"
                and self.loss_type is LossType.SAMPLED_SOFTMAX):  # negatives drawn per row
            targets = interaction[TARGET_LIST_FIELD]  # (B, L)
            own = (torch.cat([interaction[self.ITEM_SEQ], targets], dim=1)  # (B, 2L)
                   if self.exclude_own_negatives else None)
            loss = sequence_sampled_softmax_loss(
                self.output.query(hidden), targets, self.output_weight(), self.n_negatives, own)
            return loss + self.auxiliary_loss(extras)
        if TARGET_LIST_FIELD in interaction:  # full-sequence rows: a target at every position
            targets = interaction[TARGET_LIST_FIELD]  # (B, L)
            mask = targets > 0  # (B, L)
            if self.exclude_own_negatives and self.loss_type is LossType.CE:
                own = torch.cat([interaction[self.ITEM_SEQ], targets], dim=1)  # (B, 2L)
                row = torch.arange(targets.size(0), device=targets.device)  # (B,)
                own_row = row[:, None].expand_as(targets)[mask]  # (N,)
                loss = ce_loss(self.output.query(hidden[mask]), targets[mask],
                               self.output_weight(), own, own_row)
                return loss + self.auxiliary_loss(extras)
            hidden, targets = hidden[mask], targets[mask]  # (N, d), (N,)
        else:  # RecBole's prefix samples: the loss at the last position, as RecBole's SASRec
            _note_prefix_samples()
            hidden = self.gather_indexes(hidden, interaction[self.ITEM_SEQ_LEN] - 1)  # (B, d)
            targets = interaction[self.ITEM_ID]  # (B,)
        loss = next_item_loss(
            self.loss_type, self.output.query(hidden), targets, self.output_weight(),
            self.n_negatives, self.gbce_t, self.label_smoothing,
        )
        return loss + self.auxiliary_loss(extras)

    def encode_sequences(self, interaction) -> torch.Tensor:
        """The representation of each sequence: the hidden state at its last item (B, d)."""
        interaction = self.trimmed(interaction)
        hidden = self.forward(interaction)  # (B, L, d)
        return self.gather_indexes(hidden, interaction[self.ITEM_SEQ_LEN] - 1)  # (B, d)

    def output_weight(self) -> torch.Tensor:
        """The item side (V, d) or (V, d+1) of every score (``output_embedding``)."""
        return self.output.weight(self.embedding.item.weight)

    def score_all(self, sequences: torch.Tensor) -> torch.Tensor:
        """Scores (N, n_items) of every item id for sequence representations (N, d)."""
        return self.output.query(sequences) @ self.output_weight().T  # (N, n_items)

    def score_candidates(self, sequences: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of items (N,) for sequence representations (N, d)."""
        return (self.output.query(sequences) * self.output_weight()[items]).sum(-1)  # (N,)

    def predict(self, interaction) -> torch.Tensor:
        return self.score_candidates(self.encode_sequences(interaction), interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction) -> torch.Tensor:
        return self.score_all(self.encode_sequences(interaction))  # (B, n_items)
