"""Top-k recommendations from a checkpoint: ``python -m recbole_sasrec_ext recommend``.

Each user's history is the whole sequence of the data set (training, validation and test items:
the model is asked what comes after everything it knows), its last ``MAX_ITEM_LIST_LENGTH`` items.
Output: one JSON object per user on stdout (``user``, ``items``, ``scores``, and ``titles`` when
the data set has a ``.item`` file with titles, see :mod:`recbole_sasrec_ext.common.titles`).
With ``--bundle DIR`` (a folder written by ``export``) the bundle's commands run instead, without
RecBole: :mod:`recbole_sasrec_ext.serving.cli`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from recbole_sasrec_ext.common.titles import item_file, read_titles


@dataclass
class Recommendation:
    """The top-k items of one user, best first (original tokens)."""

    user: str
    items: list[str]
    scores: list[float]
    titles: list[str | None] | None = None


@dataclass
class Recommender:
    """A loaded checkpoint: the model, its data set, each user's item-id history and the titles."""

    model: torch.nn.Module
    dataset: object
    histories: dict[int, np.ndarray]  # RecBole user id -> item ids in time order
    titles: dict[str, str]

    @classmethod
    def load(cls, checkpoint: os.PathLike) -> Recommender:
        from recbole_sasrec_ext.apps.quick_start import load_data_and_model

        if not os.path.isfile(checkpoint):
            raise PluginError(f"checkpoint not found: {checkpoint}")
        config, model, dataset, *_ = load_data_and_model(str(checkpoint), log=False)
        pairs = getattr(dataset, "user_item_pairs", None)
        if pairs is None:
            raise PluginError(
                f"{checkpoint}: recommend needs a model trained on the plugin's sequence data"
            )
        users, items = pairs  # sorted by user, then time
        starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
        histories = dict(zip(users[starts].tolist(), np.split(items, starts[1:])))
        titles = read_titles(item_file(config["data_path"], config["dataset"]))
        return cls(model.eval(), dataset, histories, titles)

    def user_ids(self, user_tokens: list[str]) -> list[int]:
        """RecBole ids of ``user_tokens``; :class:`PluginError` naming the unknown ones."""
        token_id = self.dataset.field2token_id[self.dataset.uid_field]
        unknown = [t for t in user_tokens if t not in token_id or token_id[t] not in self.histories]
        if unknown:
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise PluginError(f"unknown user(s) for this checkpoint's data set "
                              f"'{self.dataset.dataset_name}': {shown}")
        return [token_id[t] for t in user_tokens]

    def batch(self, user_ids: list[int]):
        """An ``Interaction`` with each user's whole history (its last max-length items), on the
        model's device."""
        from recbole.data.interaction import Interaction

        model = self.model
        max_len = model.max_seq_length
        seq = torch.zeros(len(user_ids), max_len, dtype=torch.long)  # (U, L) right-padded
        lengths = torch.zeros(len(user_ids), dtype=torch.long)  # (U,)
        for row, uid in enumerate(user_ids):
            history = torch.from_numpy(self.histories[uid][-max_len:])
            seq[row, : len(history)] = history
            lengths[row] = len(history)
        return Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths,
                            model.USER_ID: torch.tensor(user_ids)}).to(model.device)

    @torch.no_grad()
    def scores(self, user_ids: list[int]) -> torch.Tensor:
        """Scores (U, n_items) of every item after each user's whole history."""
        model = self.model
        batch = self.batch(user_ids)
        return model.full_sort_predict(batch).float().cpu()  # (U, n_items)

    def recommend(self, user_tokens: list[str], k: int = 10, exclude_seen: bool = False,
                  batch_size: int = 1024) -> list[Recommendation]:
        ids = self.user_ids(user_tokens)
        ds = self.dataset
        out = []
        for begin in range(0, len(ids), batch_size):
            chunk = ids[begin : begin + batch_size]
            scores = self.scores(chunk)  # (U, n_items)
            candidate = torch.ones_like(scores, dtype=torch.bool)  # (U, n_items)
            candidate[:, 0] = False  # padding
            if exclude_seen:
                for row, uid in enumerate(chunk):
                    candidate[row, torch.from_numpy(self.histories[uid])] = False
            scores = scores.masked_fill(~candidate, -torch.inf)
            top = scores.topk(min(k, scores.shape[1] - 1), dim=1)
            for row, uid in enumerate(chunk):
                n = min(k, int(candidate[row].sum()))  # k may exceed the candidates: all of them
                items = top.indices[row, :n].numpy()
                tokens = [str(t) for t in ds.id2token(ds.iid_field, items)] if n else []
                titles = [self.titles.get(t) for t in tokens] if self.titles else None
                values = [_finite(float(s)) for s in top.values[row, :n]]
                out.append(Recommendation(str(ds.id2token(ds.uid_field, uid)), tokens,
                                          values, titles))
        return out


def _finite(score: float) -> float | None:
    """A score for JSON: rounded, ``None`` (null) for a model's non-finite score."""
    return round(score, 6) if math.isfinite(score) else None


def recommend(checkpoint: os.PathLike, user_tokens: list[str], k: int = 10,
              exclude_seen: bool = False) -> list[Recommendation]:
    """Top-``k`` items (original tokens, best first) for each user token of ``user_tokens``.

    Raises :class:`PluginError` for a missing checkpoint or unknown users.
    """
    return Recommender.load(checkpoint).recommend([str(u) for u in user_tokens], k, exclude_seen)


def main(argv: list[str]) -> int:
    if any(a == "--bundle" or a.startswith("--bundle=") for a in argv):
        from recbole_sasrec_ext.serving.cli import recommend_main

        return recommend_main(argv)
    parser = argparse.ArgumentParser(
        prog="python -m recbole_sasrec_ext recommend",
        description="Top-k items for users from a checkpoint (JSON lines).",
    )
    parser.add_argument("--checkpoint", required=True, help="a .pth file written by a plugin run")
    parser.add_argument("--users", required=True, help="user tokens, comma separated, or 'all'")
    parser.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--exclude-seen", action="store_true",
                        help="never recommend an item of the history")
    parser.add_argument("--batch-size", type=int, default=1024, help="users per forward pass")
    args = parser.parse_args(argv)
    try:
        if args.k < 1:
            raise PluginError(f"--k {args.k} is not allowed: expected an int >= 1")
        if args.batch_size < 1:
            raise PluginError(
                f"--batch-size {args.batch_size} is not allowed: expected an int >= 1"
            )
        given = [u.strip() for u in args.users.split(",") if u.strip()]
        if args.users != "all" and not given:
            raise PluginError(f"--users {args.users!r}: no user token given (comma separated, "
                              "or 'all')")
        rec = Recommender.load(args.checkpoint)
        ds = rec.dataset
        if args.users == "all":
            users = [str(ds.id2token(ds.uid_field, u)) for u in sorted(rec.histories)]
        else:
            users = given
        start = time.perf_counter()
        results = rec.recommend(users, args.k, args.exclude_seen, args.batch_size)
        seconds = time.perf_counter() - start
    except PluginError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for result in results:
        row = {k: v for k, v in asdict(result).items() if v is not None}
        sys.stdout.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    short = [r.user for r in results if len(r.items) < args.k]
    if short:
        print(f"note: --k {args.k} is more than the candidate items of {len(short)} user(s) "
              f"(e.g. {short[0]}: {min(len(r.items) for r in results)} items"
              f"{' not seen' if args.exclude_seen else ''}): all their candidates are returned",
              file=sys.stderr)
    print(f"{len(results)} users in {seconds:.3f} s "
          f"({len(results) / max(seconds, 1e-9):.0f} users/s,"
          f" batch {args.batch_size}, device {rec.model.device})", file=sys.stderr)
    return EXIT_OK
