"""``scipy.sparse``: the ``dok_matrix._update`` RecBole's graph models call (scipy >= 1.14)."""

from __future__ import annotations

from recbole_sasrec_ext.compat.patching import replace_attr


# --- scipy >= 1.14 --------------------------------------------------------------------------
def _dok_update(self, data) -> None:
    """scipy < 1.14's ``dok_matrix._update``: add ``{(row, col): value}`` without checks."""
    self._dict.update(data)


def dok_update(module) -> None:
    """``scipy.sparse``: ``dok_matrix._update`` where scipy lacks it."""
    dok = module.dok_matrix
    if "_update" not in dir(dok) and hasattr(dok((1, 1)), "_dict"):
        replace_attr(dok, "_update", _dok_update, "scipy_dok_update")
