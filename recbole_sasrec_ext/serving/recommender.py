"""Recommendations from a bundle: for any token sequences, for every user, similar items.

Needs numpy and one runtime (onnxruntime, or torch for the fallback); never RecBole nor the
training data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.serving import bundle as bundle_io
from recbole_sasrec_ext.serving.backends import Scorer, make_scorer
from recbole_sasrec_ext.serving.padding import pad_right
from recbole_sasrec_ext.serving.topk import top_k_rows

#: Sequences per forward pass by default (the batch-size sweep of docs/serving.md: users sorted
#: by length, smaller batches pad less).
BATCH_SIZE = 16
#: The ``fallback`` of a recommendation for a sequence without any known item.
POPULAR = "popular"


@dataclass
class Recommendation:
    """The top items of one request, best first (original tokens).

    ``unknown`` lists the request's tokens the model does not know (left out of the sequence, or
    of the candidates); ``fallback`` is ``"popular"`` when no known item remained and the most
    popular items (``scores``: their interactions in the data set) were returned; ``note`` says
    when fewer than ``k`` items could be returned; ``titles`` (when the bundle has them) is each
    item's title.
    """

    items: list[str]
    scores: list[float]
    unknown: list[str] = field(default_factory=list)
    fallback: str | None = None
    note: str | None = None
    user: str | None = None
    titles: list[str | None] | None = None  # when the bundle has titles

    def to_dict(self) -> dict:
        """JSON-ready (finite floats only), without empty optional fields (built by hand:
        ``dataclasses.asdict`` deep-copies, a fifth of all-users time)."""
        out = {"items": self.items, "scores": self.scores, "unknown": self.unknown}
        for key in ("fallback", "note", "user", "titles"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Request:
    """One recommendation request, in item ids."""

    sequence: np.ndarray  # (n,) known item ids, time order
    unknown: list[str]
    candidates: np.ndarray | None  # (m,) allowed item ids, or None for all


class BundleRecommender:
    """A loaded bundle with its runtime.

    Parameters
    ----------
    bundle : Bundle
    scorer : Scorer
        Maps padded ids (B, L) and lengths (B,) to scores (B, n_items).
    batch_size : int
        Sequences per forward pass.
    """

    def __init__(self, bundle: bundle_io.Bundle, scorer: Scorer, batch_size: int = BATCH_SIZE):
        self.bundle, self.scorer, self.batch_size = bundle, scorer, batch_size
        self.max_len = int(bundle.settings["max_seq_length"])
        self.n_items = len(bundle.items)
        self.token_id = {t: i for i, t in enumerate(bundle.items) if i > 0}
        self.popularity = bundle.popularity.astype(np.float32)  # (n_items,)

    # --- requests --------------------------------------------------------------------------
    def request(self, tokens: Sequence, candidates: Sequence | None = None) -> Request:
        """Item ids of ``tokens`` (unknown ones collected, not raised)."""
        ids, unknown = self._ids(tokens)
        allowed = None
        if candidates is not None:
            allowed, unknown_candidates = self._ids(candidates)
            unknown += [t for t in unknown_candidates if t not in unknown]
        return Request(ids, unknown, allowed)

    def _ids(self, tokens: Sequence) -> tuple[np.ndarray, list[str]]:
        ids, unknown = [], []
        for token in tokens:
            i = self.token_id.get(str(token))
            if i is None:
                if str(token) not in unknown:
                    unknown.append(str(token))
            else:
                ids.append(i)
        return np.asarray(ids, dtype=np.int64), unknown

    # --- scoring ---------------------------------------------------------------------------
    def scores(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Scores (B, n_items) float32 after each non-empty id sequence (column 0: padding)."""
        out = np.empty((len(sequences), self.n_items), dtype=np.float32)  # (B, n_items)
        for begin in range(0, len(sequences), self.batch_size):
            chunk = sequences[begin : begin + self.batch_size]
            item_seq, lengths = pad_right(chunk, self.max_len)  # (b, L), (b,)
            out[begin : begin + len(chunk)] = self.scorer(item_seq, lengths)
        return out

    def answer(self, requests: Sequence[Request], k: int, exclude_seen: bool = True
               ) -> list[Recommendation]:
        """Top-``k`` for already-parsed requests (one forward pass per ``batch_size``)."""
        if k < 1:
            raise PluginError(f"k must be >= 1, got {k}")
        if not requests:
            return []
        scored = [i for i, r in enumerate(requests) if len(r.sequence)]
        matrix = np.empty((len(requests), self.n_items), dtype=np.float32)  # (B, n_items)
        matrix[:] = self.popularity  # rows of empty sequences keep it
        if scored:
            matrix[scored] = self.scores([requests[i].sequence for i in scored])
        matrix[:, 0] = -np.inf  # never the padding item
        if exclude_seen and scored:
            rows = np.repeat(scored, [len(requests[i].sequence) for i in scored])  # (N,)
            matrix[rows, np.concatenate([requests[i].sequence for i in scored])] = -np.inf
        for row, r in enumerate(requests):
            if r.candidates is not None:
                allowed = np.zeros(self.n_items, dtype=bool)  # (n_items,)
                allowed[r.candidates] = True
                matrix[row, ~allowed] = -np.inf
        indices, counts = self.scorer.top_k(matrix, k)  # (B, k), (B,)
        top = np.take_along_axis(matrix, indices, axis=1).astype(np.float64).round(6)  # (B, k)
        return [self._result(r, idx[:c], values[:c], k) for r, idx, values, c
                in zip(requests, indices.tolist(), top.tolist(), counts.tolist())]

    def _result(self, r: Request, idx: list[int], scores: list[float], k: int
                ) -> Recommendation:
        items = [self.bundle.items[i] for i in idx]
        note = None
        if len(idx) < k:
            note = f"k={k} but only {len(idx)} items can be recommended: all returned"
        titles = [self.bundle.titles.get(t) for t in items] if self.bundle.titles else None
        return Recommendation(items, scores, r.unknown, None if len(r.sequence) else POPULAR,
                              note, titles=titles)

    # --- public API --------------------------------------------------------------------------
    def recommend(self, sequences: Sequence[Sequence], k: int = 10, exclude_seen: bool = True,
                  candidates: Sequence | None = None) -> list[Recommendation]:
        """Top-``k`` items after each token sequence (oldest first), best first.

        Parameters
        ----------
        sequences : list of token lists
            Original item tokens; only the last ``max_seq_length`` known ones are read.
        k : int
            Items per sequence; fewer come back (with a ``note``) when fewer can be recommended.
        exclude_seen : bool
            Never recommend an item of the sequence.
        candidates : list of tokens or None
            Recommend only among these (the same for every sequence).
        """
        if isinstance(sequences, str):
            raise PluginError("sequences must be a list of token lists, not a string")
        return self.answer([self.request(s, candidates) for s in sequences], k, exclude_seen)

    def recommend_all(self, k: int = 10, exclude_seen: bool = True, chunk_size: int = 4096
                      ) -> Iterator[Recommendation]:
        """Top-``k`` for every user of the bundle's histories, in user order, computed
        ``chunk_size`` users at a time (memory bounded by the chunk); within a chunk users are
        scored in order of length, so that each batch is only as long as it needs."""
        for chunk in self.recommend_all_chunks(k, exclude_seen, chunk_size):
            yield from chunk

    def recommend_all_chunks(self, k: int = 10, exclude_seen: bool = True,
                             chunk_size: int = 4096) -> Iterator[list[Recommendation]]:
        """:meth:`recommend_all` one chunk (a list of up to ``chunk_size`` users, in user order)
        at a time, for writers that write a chunk at once (Parquet row groups)."""
        hist = self.bundle.histories
        if hist is None:
            raise PluginError(f"bundle {self.bundle.path} has no user histories "
                              "(exported with --no-histories)")
        if chunk_size < 1:
            raise PluginError(f"chunk size must be >= 1, got {chunk_size}")
        for begin in range(0, len(hist), chunk_size):
            rows = range(begin, min(begin + chunk_size, len(hist)))
            seqs = [np.asarray(hist.of(u), dtype=np.int64) for u in rows]  # whole: all excluded
            order = np.argsort([min(len(s), self.max_len) for s in seqs], kind="stable")
            requests = [Request(seqs[i], [], None) for i in order]
            results = self.answer(requests, k, exclude_seen)
            by_row = [None] * len(seqs)
            for i, res in zip(order, results):
                res.user = hist.users[rows[i]]
                by_row[i] = res
            yield by_row

    def similar_items(self, token: str, k: int = 10) -> Recommendation:
        """The ``k`` items whose embeddings have the largest cosine with ``token``'s."""
        item = self.token_id.get(str(token))
        if item is None:
            raise PluginError(f"unknown item token: {token!r}")
        if k < 1:
            raise PluginError(f"k must be >= 1, got {k}")
        emb = self.bundle.item_embeddings.astype(np.float64)  # (n, d)
        norms = np.linalg.norm(emb, axis=1)  # (n,)
        cosine = emb @ emb[item] / np.maximum(norms * norms[item], 1e-12)  # (n,)
        cosine[[0, item]] = -np.inf
        idx, count = top_k_rows(cosine[None, :], k)  # (1, k), (1,)
        idx = idx[0, : count[0]]  # (c,)
        return self._result(Request(np.asarray([item]), [], None), idx.tolist(),
                            cosine[idx].round(6).tolist(), k)


def load(path: os.PathLike | str, backend: str = "auto", threads: int | None = None,
         batch_size: int = BATCH_SIZE, session: dict | None = None) -> BundleRecommender:
    """Load a bundle folder written by ``python -m recbole_sasrec_ext export``.

    Parameters
    ----------
    path : path of the bundle folder
    backend : ``auto`` (onnxruntime if installed, else torch), ``onnx`` or ``torch``
    threads : intra-op threads of the runtime (None: its default)
    batch_size : sequences per forward pass
    session : overrides of the onnxruntime session settings (``backends.SESSION_DEFAULTS``)
    """
    data = bundle_io.read(path)
    return BundleRecommender(
        data, make_scorer(data.path, data.settings, backend, threads, session), batch_size)
