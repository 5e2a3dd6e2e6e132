"""Per-user test metrics: each test user's NDCG@k, Hit@k, ... as RecBole computes them before
averaging, written compactly next to a run for per-user significance tests.

RecBole's ``Trainer.evaluate`` collects, batch by batch, a ``rec.topk`` matrix (one row per
evaluated user: the hit flags of the top ``max(topk)`` items, then the number of positives) and
averages each metric's per-user values (``metric_info``) over the rows. :class:`PerUserRecorder`
attaches to a trainer's collector (no change to the trainer): it records the user ids of every
batch's score rows and the final ``rec.topk``; :func:`per_user_metrics` applies RecBole's own
``metric_info`` to it, so the mean of a per-user column equals RecBole's reported metric.

File format (``.npz``, no pickled objects): ``user`` (the users' tokens as in the atomic files,
str), and one float32 array per metric, named like RecBole's results (``ndcg@10``, ``hit@10``),
row i for ``user[i]``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbole_sasrec_ext.common.atomic_write import atomic_path

USER_KEY = "user"
#: RecBole's data-struct entry the per-user values come from.
TOPK_ENTRY = "rec.topk"


@dataclass(frozen=True)
class PerUser:
    """Per-user values of one run: ``users[i]``'s value of each metric is ``values[m][i]``."""

    users: np.ndarray  # (U,) str
    values: Mapping[str, np.ndarray]  # metric -> (U,) float32


class PerUserRecorder:
    """Records the user of every score row and the last ``rec.topk`` a trainer's evaluation
    collects; attach it with :meth:`attach` before ``trainer.evaluate(test_data)``."""

    def __init__(self, uid_field: str) -> None:
        self.uid_field = uid_field
        self._users: list[np.ndarray] = []
        self.consistent = True  # False when a batch's users could not be matched to its rows
        self.topk: np.ndarray | None = None  # (rows, max(topk) + 1)
        self.users = np.zeros(0, dtype=np.int64)  # (rows,) internal user ids of self.topk's rows

    @classmethod
    def attach(cls, trainer, uid_field: str) -> PerUserRecorder:
        """Wrap ``trainer.eval_collector``'s ``eval_batch_collect`` and ``get_data_struct``."""
        recorder = cls(uid_field)
        collector = trainer.eval_collector
        batch_collect, get_struct = collector.eval_batch_collect, collector.get_data_struct

        def eval_batch_collect(scores, interaction, positive_u, positive_i):
            recorder.record_batch(len(scores), interaction[uid_field])
            return batch_collect(scores, interaction, positive_u, positive_i)

        def get_data_struct():
            struct = get_struct()
            recorder.record_struct(struct)
            return struct

        collector.eval_batch_collect = eval_batch_collect
        collector.get_data_struct = get_data_struct
        return recorder

    def record_batch(self, n_rows: int, users) -> None:
        """The users of a batch's ``n_rows`` score rows: one interaction row per score row (full
        ranking), or each user's candidate rows next to each other (sampled ranking)."""
        users = np.asarray(users.cpu() if hasattr(users, "cpu") else users)  # (N,)
        if len(users) != n_rows and len(users):
            starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
            users = users[starts]  # (n_rows,) when each user's rows are consecutive
        if len(users) != n_rows:
            self.consistent = False
        self._users.append(users)

    def record_struct(self, struct) -> None:
        """Keep ``rec.topk`` of the evaluation that just ended (and start afresh)."""
        users, self._users = self._users, []
        if TOPK_ENTRY not in struct:
            return
        self.topk = struct.get(TOPK_ENTRY).cpu().numpy()
        self.users = np.concatenate(users) if users else np.zeros(0, dtype=np.int64)

    @classmethod
    def joined(cls, parts: Sequence[PerUserRecorder]) -> PerUserRecorder:
        """The recorders of the ranks of a sharded evaluation, in rank order, as one: their users
        and ``rec.topk`` rows concatenated as the evaluation concatenates the collector's rows."""
        whole = cls(parts[0].uid_field)
        whole.consistent = all(part.consistent for part in parts)
        whole.users = np.concatenate([part.users for part in parts])  # (rows,)
        tops = [part.topk for part in parts if part.topk is not None]
        whole.topk = np.concatenate(tops) if tops else None  # (rows, max(topk) + 1)
        return whole

    def result(self, metrics: Sequence[str], topk: Sequence[int], id2token) -> PerUser | None:
        """The recorded evaluation's per-user values (None: nothing recorded, no top-k metric, or
        rows that could not be matched to users); ``id2token`` maps internal user ids to tokens."""
        if self.topk is None or not self.consistent or len(self.users) != len(self.topk):
            return None
        values = per_user_metrics(self.topk, metrics, topk)
        if not values:
            return None
        return PerUser(np.asarray(id2token(self.users)).astype(str), values)


def _metric_classes(metrics: Sequence[str]) -> dict[str, type]:
    from recbole.evaluator.register import metrics_dict

    chosen = {}
    for name in metrics:
        cls = metrics_dict.get(name.lower())
        if cls is not None and list(getattr(cls, "metric_need", [])) == [TOPK_ENTRY]:
            chosen[name.lower()] = cls
    return chosen


def per_user_metrics(
    topk_matrix: np.ndarray, metrics: Sequence[str], topk: Sequence[int]
) -> dict[str, np.ndarray]:
    """Per-user values of every top-k metric of ``metrics`` at every cut-off of ``topk``.

    Parameters
    ----------
    topk_matrix
        RecBole's ``rec.topk``: (users, max(topk) + 1), the hit flags of the top items, then the
        number of positive items.
    metrics, topk
        RecBole's ``metrics`` and ``topk``; metrics that need more than ``rec.topk`` are skipped.

    Returns
    -------
    dict
        ``"ndcg@10"`` -> (users,) float32, computed by RecBole's own ``metric_info``.
    """
    # RecBole's metric code uses np.float: defined by ``import recbole_sasrec_ext`` (compat)
    matrix = np.asarray(topk_matrix)
    pos_index, pos_len = matrix[:, :-1].astype(bool), matrix[:, -1]  # (U, K), (U,)
    values = {}
    for name, cls in _metric_classes(metrics).items():
        info = cls.metric_info
        n_args = len(inspect.signature(info).parameters) - 1  # without self
        per_k = info(None, pos_index, pos_len) if n_args >= 2 else info(None, pos_index)  # (U, K)
        for k in topk:
            values[f"{name}@{k}"] = np.asarray(per_k[:, k - 1], dtype=np.float32)
    return values


def save(path: os.PathLike | str, per_user: PerUser) -> Path:
    """Write ``per_user`` to ``path`` (.npz, compressed, atomic; parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, **{USER_KEY: per_user.users}, **dict(per_user.values))
    return path


def load(path: os.PathLike | str) -> PerUser:
    """Read a file written by :func:`save` (no pickle).

    Raises
    ------
    ValueError
        If the file has no ``user`` array or arrays of different lengths (names the file).
    """
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    users = arrays.pop(USER_KEY, None)
    if users is None or any(len(v) != len(users) for v in arrays.values()):
        raise ValueError(
            f"{path}: not a per-user metrics file (needs '{USER_KEY}' and equal lengths)"
        )
    return PerUser(users.astype(str), arrays)
