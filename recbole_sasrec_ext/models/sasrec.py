"""SASRec, the paper's model trained the paper's way.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018 (arXiv 1808.09781).
"""

from __future__ import annotations

from torch import nn

from recbole_sasrec_ext.layers.attention import CausalSelfAttention
from recbole_sasrec_ext.models.transformer_recommender import TransformerRecommender


class SASRec(TransformerRecommender):
    """Self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

    Item embedding (×√d) + learned positions, ``n_layers`` blocks of causal self-attention and a
    point-wise feed-forward network with residuals, LayerNorm and dropout; the score of an item
    is the dot product of the last hidden state with the shared item embedding. Trained as in the
    paper: each user's whole training sequence (its last ``MAX_ITEM_LIST_LENGTH``+1 items) is one
    example with a loss at every position (``FullSequenceDataset``), not one example per prefix.
    Defaults (``properties/model/SASRec.yaml``) are the paper's: d=50, 2 blocks, 1 head, ReLU,
    pre-LayerNorm, BCE with one sampled negative per position, Adam lr 1e-3 (β2=0.98), batch 128.

    Deliberate deviations from the paper (see docs/sasrec.md):

    * sequences are right-padded (RecBole's layout); positions count back from the most recent
      item, which equals the paper's left-padded positions up to a relabelling of the table;
    * the attention has an output projection and biases (as ``torch.nn.MultiheadAttention`` in
      SASRec.pytorch); pre-LayerNorm normalises keys and values too (the TF code only the queries);
    * the sampled negative of a position is any item but that position's target (the paper's
      code excludes the user's whole history: with ML-1M's 3,416 items this changes ~5% of draws);
    * weights are initialised with Xavier-normal (SASRec.pytorch), not TF's Glorot-uniform;
    * extra options: ``loss_type`` CE / SAMPLED_SOFTMAX / GBCE, ``layer_norm: post`` or ``sasrec``
      (the original code's block: keys/values un-normalised, residual on the normalised queries),
      ``init: normal`` (SASRec+), ``position_order: from_start``, ``train_stride`` (the whole
      history of long users), ``hidden_act: gelu`` / ``swiglu``, ``layer_norm: gated``
      (eSASRec's block), ``label_smoothing`` (CE), ``scale_embedding: False``,
      ``output_embedding: tied_bias`` / ``untied`` (a bias per item, or an output table of its own;
      the paper's shared embedding is the default);
    * under full ranking, unless set, the full-ranking recipe applies
      (``properties/model/recipe-full-ranking.yaml``: CE with label smoothing 0.3, d=64, one
      block, the original code's block, ``train_stride`` half the window, ...).
    """

    def build_attention(self, config) -> nn.Module:
        return CausalSelfAttention(config["hidden_size"], config["n_heads"],
                                   config["attn_dropout_prob"])
