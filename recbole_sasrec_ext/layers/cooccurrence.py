"""Item-item co-occurrence counts for RKSA (Ji et al., AAAI 2020, arXiv 1911.06478).

``C = AᵀA`` for the binary user×item matrix ``A`` of the *training* interactions: ``C[a, b]`` is
the number of users whose training history contains both ``a`` and ``b`` and ``C[a, a]`` is the
popularity of ``a``. The caller passes only training pairs; this module never sees held-out items.

``C`` is built with ``scipy.sparse`` and kept dense only when it fits ``dense_budget_bytes``;
otherwise it is stored as sorted flat keys ``a * n_items + b`` with their counts, and each batch's
``(L, L)`` blocks are gathered with ``torch.searchsorted``. Everything is a persistent buffer, so
the table travels with the model's ``state_dict``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

PADDING_ID = 0
BYTES_PER_CELL = 4  # float32
DEFAULT_DENSE_BUDGET_BYTES = 256 * 2**20


def cooccurrence_counts(n_items: int, users: np.ndarray, items: np.ndarray) -> sp.csr_matrix:
    """Return ``C = AᵀA`` (int64 CSR, shape ``(n_items, n_items)``) for the binary matrix ``A``.

    Parameters
    ----------
    n_items : int
        Number of item ids including the padding id 0.
    users, items : np.ndarray
        Parallel integer arrays of (user, item) interactions; duplicates count once. User ids may be
        arbitrary integers; item ids must lie in ``[1, n_items)``.

    Returns
    -------
    scipy.sparse.csr_matrix
        Symmetric co-occurrence counts with sorted indices.
    """
    users = np.asarray(users).astype(np.int64, copy=False).ravel()
    items = np.asarray(items).astype(np.int64, copy=False).ravel()
    if users.shape != items.shape:
        raise ValueError(
            f"users and items must have the same length, got {users.size} and {items.size}"
        )
    if items.size and (items.min() <= PADDING_ID or items.max() >= n_items):
        raise ValueError(
            f"item ids must lie in [1, n_items={n_items}), got range [{items.min()}, {items.max()}]"
        )
    _, user_rows = np.unique(users, return_inverse=True)
    n_users = int(user_rows.max()) + 1 if users.size else 0
    ones = np.ones(items.size, dtype=np.int64)
    incidence = sp.coo_matrix((ones, (user_rows, items)), shape=(n_users, n_items)).tocsr()
    incidence.sum_duplicates()
    incidence.data[:] = 1  # binary: a repeated (user, item) pair counts once
    counts = (incidence.T @ incidence).tocsr()
    counts.sort_indices()
    return counts


class CooccurrenceTable(nn.Module):
    """Item-item co-occurrence counts C = AᵀA of the binary user×item matrix A (training only).

    Parameters
    ----------
    n_items : int
        Number of item ids including padding id 0.
    users, items : np.ndarray
        Parallel arrays of training (user, item) interactions.
    dense_budget_bytes : int
        Keep ``C`` as a dense float32 matrix when ``n_items² · 4`` bytes fit in this budget.
    """

    def __init__(
        self,
        n_items: int,
        users: np.ndarray,
        items: np.ndarray,
        dense_budget_bytes: int = DEFAULT_DENSE_BUDGET_BYTES,
    ) -> None:
        super().__init__()
        self.n_items = int(n_items)
        counts = cooccurrence_counts(self.n_items, users, items)
        self.nnz = int(counts.nnz)
        popularity = counts.diagonal().astype(np.float32)
        self.register_buffer("popularity", torch.from_numpy(popularity))  # (n_items,)
        if self.n_items**2 * BYTES_PER_CELL <= dense_budget_bytes:
            dense = counts.toarray().astype(np.float32)
            self.register_buffer("dense", torch.from_numpy(dense))  # (n_items, n_items)
            self.register_buffer("keys", None)
            self.register_buffer("values", None)
        else:
            coo = counts.tocoo()
            keys = coo.row.astype(np.int64) * self.n_items + coo.col.astype(np.int64)
            order = np.argsort(keys, kind="stable")
            self.register_buffer("dense", None)
            self.register_buffer("keys", torch.from_numpy(keys[order]))  # (nnz,)
            values = coo.data[order].astype(np.float32)
            self.register_buffer("values", torch.from_numpy(values))  # (nnz,)

    @property
    def is_dense(self) -> bool:
        """Whether ``C`` is stored as a dense ``(n_items, n_items)`` buffer."""
        return self.dense is not None

    def block(self, item_seq: torch.LongTensor) -> torch.Tensor:
        """Gather ``C[s_i, s_j]`` for every pair of positions of each sequence.

        Parameters
        ----------
        item_seq : torch.LongTensor
            ``(B, L)`` item ids, 0 for padding.

        Returns
        -------
        torch.Tensor
            ``(B, L, L)`` float32 counts; 0 wherever either id is padding (item 0 never occurs).
        """
        rows = item_seq.unsqueeze(-1)  # (B, L, 1)
        cols = item_seq.unsqueeze(-2)  # (B, 1, L)
        if self.is_dense:
            return self.dense[rows, cols]  # (B, L, L)
        query = rows * self.n_items + cols  # (B, L, L) flat keys
        if self.keys.numel() == 0:
            return torch.zeros(query.shape, dtype=torch.float32, device=query.device)
        pos = torch.searchsorted(self.keys, query).clamp_max(self.keys.numel() - 1)  # (B, L, L)
        hit = self.keys[pos] == query  # (B, L, L)
        return torch.where(hit, self.values[pos], torch.zeros((), device=query.device))  # (B, L, L)

    def extra_repr(self) -> str:
        return f"n_items={self.n_items}, nnz={self.nnz}, dense={self.is_dense}"
