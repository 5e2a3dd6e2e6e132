"""RKSA: SASRec whose attention logits are drawn from a kernelized multivariate skew-normal.

Ji, Joo, Song, Kim, Moon, "Sequential Recommendation with Relation-Aware Kernelized
Self-Attention", AAAI 2020 (arXiv 1911.06478). The first public implementation; the
specification and every choice the paper leaves open are in docs/rksa.md.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.contract.keys import Key, Unavailable
from recbole_sasrec_ext.data.training_pairs import training_pairs
from recbole_sasrec_ext.layers.cooccurrence import CooccurrenceTable
from recbole_sasrec_ext.layers.rksa_attention import KernelizedSkewAttention
from recbole_sasrec_ext.layers.rksa_kernel import KERNEL_VARIANTS, RelationKernel
from recbole_sasrec_ext.models.transformer_recommender import (
    TRANSFORMER_KEYS,
    TransformerRecommender,
)

#: Names of the three kernels, in the order of the mixture weights r.
KERNEL_NAMES = KERNEL_VARIANTS["mixture"]


class KernelSharing(str, Enum):
    """Config key ``kernel_sharing``: one kernel per block (the paper) or one for all blocks."""

    PER_BLOCK = "per_block"
    SHARED = "shared"


class RKSA(TransformerRecommender):
    """Relation-aware kernelized self-attention (Ji et al., AAAI 2020).

    Identical to the plugin's :class:`~recbole_sasrec_ext.models.sasrec.SASRec` (embeddings,
    blocks, losses at every position, scoring) except for the attention layer,
    :class:`~recbole_sasrec_ext.layers.rksa_attention.KernelizedSkewAttention`: for each query
    position the logits are an MSN draw (training) or the MSN mean (evaluation) whose covariance
    is a per-user mixture of a co-occurrence kernel, an item-embedding RBF and a user-conditioned
    RBF, and whose skewness comes from two-hop co-occurrence. Adds a user embedding (the kernel
    mixture weights r = softmax(u W + b)) and ``kernel_loss_weight`` × the kernel alignment loss.

    Co-occurrence counts are built from the training split only (``dataset.train_pairs``: the
    validation and test items never contribute; the paper used the whole data set), kept sparse
    above ``cooc_dense_budget_mb``, and stored in the checkpoint.

    Deliberate deviations from the paper (details in docs/rksa.md and the layer's docstring):
    the kernel formulas, Σ_t = diag(ω_t) K diag(ω_t), the shape term's prefix restriction and the
    kernel loss are this project's choices where the paper's text could not be read; single-head
    attention without output projection; evaluation uses the deterministic MSN mean. Options
    beyond the paper: ``kernel_sharing: shared`` (one kernel, its factorisation and mixture
    weights for all blocks) and ``kernel_variant`` (k_c alone, or k_i and k_u only).
    """

    CONFIG_KEYS = tuple(k for k in TRANSFORMER_KEYS if k.name not in ("n_heads", "bf16")) + (
        Key("n_heads", int, low=1, high=1),  # single-head attention
        Key("bf16", bool, choices=(False,)),  # the Cholesky factorisation needs float32
        Key("kernel_loss_weight", float, low=0.0),
        Key("rksa_jitter", float, low=0.0, low_open=True, high=1.0),
        Key("eval_samples", int, low=0),
        Key("init_length_scale", float, low=0.001),
        Key("cooc_dense_budget_mb", int, low=0),
        Key("kernel_sharing", str, choices=tuple(s.value for s in KernelSharing)),
        Key("kernel_variant", str, choices=tuple(KERNEL_VARIANTS)),
    )
    CONFIG_RULES = (*TransformerRecommender.CONFIG_RULES, Unavailable(
        "length_split", "RKSA", "its kernel loss is pooled over the whole batch's pairs"))

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        users, items = training_pairs(dataset)  # plugin or RecBole prefix-sample data
        self.cooccurrence = CooccurrenceTable(
            self.n_items, users, items, dense_budget_bytes=config["cooc_dense_budget_mb"] * 2**20
        )
        self.user_embedding = nn.Embedding(dataset.user_num, config["hidden_size"])
        nn.init.xavier_normal_(self.user_embedding.weight)
        self.kernel_loss_weight = config["kernel_loss_weight"]
        self.kernel_names = KERNEL_VARIANTS[config["kernel_variant"]]
        self.relation_kernel = None
        if KernelSharing(config["kernel_sharing"]) is KernelSharing.SHARED:
            self.relation_kernel = RelationKernel(
                config["hidden_size"],
                config["rksa_jitter"],
                config["init_length_scale"],
                config["kernel_variant"],
            )
            self._init_weights(self.relation_kernel.mixture)

    def build_attention(self, config) -> nn.Module:
        if config["n_heads"] != 1 or config["bf16"]:
            raise PluginError(
                "RKSA's attention is single-head and float32 (Cholesky): "
                "set n_heads: 1 and bf16: False"
            )
        return KernelizedSkewAttention(
            config["hidden_size"],
            config["attn_dropout_prob"],
            jitter=config["rksa_jitter"],
            eval_samples=config["eval_samples"],
            init_length_scale=config["init_length_scale"],
            kernel_variant=config["kernel_variant"],
            own_kernel=KernelSharing(config["kernel_sharing"]) is KernelSharing.PER_BLOCK,
        )

    def attention_inputs(self, interaction, item_seq: torch.Tensor, e: torch.Tensor) -> dict:
        inputs = {
            "valid": item_seq > 0,  # (B, L)
            "item_emb": e,  # (B, L, d)
            "user_emb": self.user_embedding(interaction[self.USER_ID]),  # (B, d)
            "cooc": self.cooccurrence.block(item_seq),  # (B, L, L)
        }
        if self.relation_kernel is not None:  # one kernel (and factorisation) for every block
            return {"valid": inputs["valid"], "kernel_state": self.relation_kernel(**inputs)}
        return inputs

    def relation_kernels(self) -> list[RelationKernel]:
        """The kernel of each block (the same object for every block when shared)."""
        if self.relation_kernel is not None:
            return [self.relation_kernel] * len(self.blocks)
        return [block.attention.kernel for block in self.blocks]

    def auxiliary_loss(self, extras: list) -> torch.Tensor:
        kernel_loss = torch.stack([att.kernel_loss for att in extras]).mean()
        return self.kernel_loss_weight * kernel_loss

    @torch.no_grad()
    def explain(self, interaction) -> dict:
        """For the first sequence of ``interaction``: the top recommended item not already in the
        history, the last block's attention over the history at the last position, and the kernel
        mixture weights r."""
        was_training = self.training
        self.eval()
        one = interaction[torch.tensor([0])]
        hidden, extras = self.encode(one)  # (1, L, d)
        n = int(one[self.ITEM_SEQ_LEN][0])
        scores = self.score_all(hidden[0, n - 1][None])[0]  # (n_items,)
        scores[0] = float("-inf")
        scores[one[self.ITEM_SEQ][0, :n]] = float("-inf")  # recommend something new
        last = extras[-1]
        self.train(was_training)
        return {
            "user": int(one[self.USER_ID][0]),
            "history": one[self.ITEM_SEQ][0, :n].tolist(),
            "recommended": int(scores.argmax()),
            "attention": last.weights[0, n - 1, :n].tolist(),
            "mixture": dict(zip(self.kernel_names, last.mixture[0].tolist())),
        }

    def explain_example(self, test_data) -> dict:
        """:meth:`explain` for the first test user, with RecBole ids mapped back to tokens."""
        batch = next(iter(test_data))[0].to(self.device)
        ex = self.explain(batch)
        ds = test_data._dataset
        ex["user"] = str(ds.id2token(ds.uid_field, ex["user"]))
        ex["history"] = [str(t) for t in ds.id2token(ds.iid_field, ex["history"])]
        ex["recommended"] = str(ds.id2token(ds.iid_field, ex["recommended"]))
        return ex
