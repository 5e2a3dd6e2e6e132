"""Pictures of what a trained model attends to: ``python -m recbole_sasrec_ext explain``.

Writes PNGs (matplotlib, Agg backend) into ``--out``:

* ``attention_blocks.png``: each block's attention weights averaged over users, by (query position,
  key position), the sequences aligned at their most recent item (as the SASRec paper's Figure 4);
* ``attention_user.png``: one user's attention at their last position over their most recent
  items, per block, with titles where the data set has them;
* RKSA only: ``rksa_mixture.png`` (the per-user kernel mixture weights r of each block, and the
  learned RBF length-scales) and ``rksa_skew.png`` (one user's skewness α of the last block).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from recbole_sasrec_ext.apps.recommend import Recommender
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from recbole_sasrec_ext.config.validation import check_output_dir

#: History items shown in the per-user pictures.
SHOWN_ITEMS = 20


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@torch.no_grad()
def attention(rec: Recommender, user_ids: list[int]) -> tuple[list, torch.Tensor]:
    """Each block's :class:`AttentionOutput` (weights (U, L, L)) and the lengths (U,)."""
    model = rec.model.eval()
    for block in model.blocks:
        if hasattr(block.attention, "need_weights"):
            block.attention.need_weights = True
    try:
        batch = rec.batch(user_ids)
        _, extras = model.encode(batch)
    finally:
        for block in model.blocks:
            if hasattr(block.attention, "need_weights"):
                block.attention.need_weights = False
    return extras, batch[model.ITEM_SEQ_LEN].cpu()


def accumulate_by_position(total: torch.Tensor, count: torch.Tensor, weights: torch.Tensor,
                           lengths: torch.Tensor) -> None:
    """Add users' attention (U, L, L) into ``total`` and ``count`` (L, L) by (query, key) position
    counted from the end: row/column L-1 is each user's most recent item (the left-padded layout of
    the SASRec paper); mean = total / count, NaN where no user reaches a cell."""
    max_len = total.shape[0]
    for u in range(weights.shape[0]):
        n = int(lengths[u])
        total[max_len - n :, max_len - n :] += weights[u, :n, :n].float().cpu()
        count[max_len - n :, max_len - n :] += torch.ones(n, n).tril()


def _label(rec: Recommender, item_id: int, width: int = 38) -> str:
    token = str(rec.dataset.id2token(rec.dataset.iid_field, item_id))
    title = rec.titles.get(token)
    text = f"{title} [{token}]" if title else f"item {token}"
    return text if len(text) <= width else text[: width - 1] + "…"


def plot_blocks(matrices: list[np.ndarray], model_name: str, n_users: int, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 4.6), squeeze=False)
    for b, (ax, matrix) in enumerate(zip(axes[0], matrices)):
        length = matrix.shape[0]
        # the first query's weight 1 would wash out the rest
        vmax = float(np.nanpercentile(matrix, 99))
        image = ax.imshow(matrix, cmap="viridis", origin="upper", vmin=0, vmax=vmax,
                          extent=(-length + 0.5, 0.5, 0.5, -length + 0.5))
        ax.set_title(f"block {b + 1}")
        ax.set_xlabel("key position (0 = most recent item)")
        ax.set_ylabel("query position (0 = most recent item)")
        ax.set_ylim(0.5, -length + 0.5)
        fig.colorbar(image, ax=ax, fraction=0.046,
                     label="mean attention weight (clipped at 99th pct)")
    fig.suptitle(f"{model_name}: attention weights averaged over {n_users} users "
                 "(sequences aligned at their most recent item)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_user(rec: Recommender, extras: list, row: int, length: int, user: str, path: Path) -> None:
    plt = _pyplot()
    shown = min(length, SHOWN_ITEMS)
    items = rec.histories[rec.user_ids([user])[0]][-rec.model.max_seq_length :][-shown:]
    labels = [_label(rec, int(i)) for i in items]
    fig, axes = plt.subplots(1, len(extras), figsize=(5.5 * len(extras), 0.32 * shown + 1.8),
                             squeeze=False)
    for b, (ax, att) in enumerate(zip(axes[0], extras)):
        w = att.weights[row, length - 1, length - shown : length].float().cpu().numpy()
        ax.barh(np.arange(shown), w, color="tab:blue")
        ax.set_yticks(np.arange(shown), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("attention weight at the last position")
        ax.set_title(f"block {b + 1} (top: oldest shown, bottom: most recent)", fontsize=9)
    fig.suptitle(f"user {user}: attention over the {shown} most recent of {length} history items")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_mixture(rec: Recommender, mixtures: list[torch.Tensor], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(mixtures), figsize=(4.8 * len(mixtures), 3.8), squeeze=False)
    kernels = rec.model.relation_kernels()
    for b, (ax, mixture) in enumerate(zip(axes[0], mixtures)):
        r = mixture.float().numpy()  # (U, n_kernels)
        ax.boxplot([r[:, k] for k in range(r.shape[1])])
        ax.set_xticks(range(1, len(kernels[b].names) + 1), kernels[b].names)
        scales = ", ".join(f"{n} {v:.2f}" for n, v in kernels[b].length_scales().items())
        ax.set_title(f"block {b + 1}: length-scales {scales or '(none)'}", fontsize=9)
        ax.set_ylabel("mixture weight r (per user)")
    fig.suptitle(f"RKSA kernel mixture weights over {len(mixtures[0])} users")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def skew(rec: Recommender, user_id: int) -> tuple[np.ndarray, int]:
    """The last block's shape α (n, n) for one user (RKSA), from the block's own inputs."""
    from recbole_sasrec_ext.layers.rksa_attention import causal_valid_mask, two_hop_shape

    layer = rec.model.blocks[-1].attention
    captured = {}

    def hook(module, args, kwargs):
        captured["x"], captured["kw"] = args[0] if args else kwargs["x"], kwargs

    handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        batch = rec.batch([user_id])
        rec.model.eval().encode(batch)
    finally:
        handle.remove()
    x, kw = captured["x"], captured["kw"]
    if "kernel_state" in kw:  # kernel_sharing: shared
        relevance = kw["kernel_state"].relevance  # (1, L, L)
    else:
        relevance = two_hop_shape(kw["cooc"].to(x.dtype),
                                  causal_valid_mask(kw["valid"]))  # (1, L, L)
    hidden = x.shape[-1]
    _, _, _, _, q_s, k_s = layer.scores(x).chunk(6, dim=-1)
    alpha = (q_s @ k_s.transpose(-1, -2)) / hidden**0.5 * relevance  # (1, L, L)
    n = int(batch[rec.model.ITEM_SEQ_LEN][0])
    return alpha[0, :n, :n].cpu().numpy(), n


def plot_skew(rec: Recommender, user: str, path: Path) -> None:
    plt = _pyplot()
    alpha, n = skew(rec, rec.user_ids([user])[0])
    shown = min(n, SHOWN_ITEMS)
    sub = alpha[n - shown :, n - shown :]
    items = rec.histories[rec.user_ids([user])[0]][-rec.model.max_seq_length :][-shown:]
    labels = [_label(rec, int(i), 28) for i in items]
    fig, ax = plt.subplots(figsize=(9, 8))
    bound = float(np.abs(sub).max()) or 1.0
    image = ax.imshow(np.where(np.tril(np.ones_like(sub)) > 0, sub, np.nan), cmap="coolwarm",
                      vmin=-bound, vmax=bound)
    ax.set_xticks(range(shown), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(shown), labels, fontsize=7)
    ax.set_xlabel("key item")
    ax.set_ylabel("query item")
    fig.colorbar(image, ax=ax, fraction=0.046, label="skewness α (0: no co-occurrence evidence)")
    ax.set_title(f"RKSA last block: skewness of the attention logits, user {user}, "
                 f"{shown} most recent items", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def explain(checkpoint, out, user: str | None = None, max_users: int = 512,
            batch_size: int = 128) -> list[Path]:
    """Write the pictures of :mod:`recbole_sasrec_ext.apps.explain` for ``checkpoint`` into ``out``;
    return their paths. ``user``: the user of the per-user pictures (default: the first user);
    ``max_users``: users averaged (the first ones by RecBole id)."""
    if isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 1:
        raise PluginError(f"--max-users {max_users} is not allowed: expected an int >= 1")
    check_output_dir("--out", out)
    rec = Recommender.load(checkpoint)
    from recbole_sasrec_ext.models.transformer_recommender import TransformerRecommender

    if not isinstance(rec.model, TransformerRecommender):  # attention blocks, ``encode``
        raise PluginError(
            f"{checkpoint}: explain needs a model with attention blocks (SASRec, RKSA); "
            f"this checkpoint is of {type(rec.model).__name__}"
        )
    ds = rec.dataset
    ids = sorted(rec.histories)[:max_users]
    user = user if user is not None else str(ds.id2token(ds.uid_field, ids[0]))
    uid = rec.user_ids([user])[0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = type(rec.model).__name__
    max_len, n_blocks = rec.model.max_seq_length, len(rec.model.blocks)
    totals = [torch.zeros(max_len, max_len) for _ in range(n_blocks)]
    counts = [torch.zeros(max_len, max_len) for _ in range(n_blocks)]
    mixtures = [[] for _ in range(n_blocks)]
    for begin in range(0, len(ids), batch_size):
        extras, lengths = attention(rec, ids[begin : begin + batch_size])
        for b, att in enumerate(extras):
            accumulate_by_position(totals[b], counts[b], att.weights, lengths)
            if att.mixture is not None:
                mixtures[b].append(att.mixture.cpu())
    matrices = [torch.where(c > 0, t / c.clamp_min(1), torch.nan).numpy()
                for t, c in zip(totals, counts)]
    paths = [out / "attention_blocks.png", out / "attention_user.png"]
    plot_blocks(matrices, name, len(ids), paths[0])
    extras, lengths = attention(rec, [uid])
    plot_user(rec, extras, 0, int(lengths[0]), user, paths[1])
    if mixtures[0]:
        paths += [out / "rksa_mixture.png", out / "rksa_skew.png"]
        plot_mixture(rec, [torch.cat(m) for m in mixtures], paths[2])
        plot_skew(rec, user, paths[3])
    return paths


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbole_sasrec_ext explain",
                                     description="Write attention pictures (PNG) of a checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="a .pth file written by a plugin run")
    parser.add_argument("--out", required=True, help="folder for the PNGs (created)")
    parser.add_argument("--user", default=None, help="user token of the per-user pictures")
    parser.add_argument("--max-users", type=int, default=512, help="users averaged (default 512)")
    args = parser.parse_args(argv)
    try:
        paths = explain(args.checkpoint, args.out, args.user, args.max_users)
    except PluginError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for path in paths:
        print(path)
    return EXIT_OK
