"""Everything RecBole 1.2.1 needs to run on today's stack, in one place.

RecBole 1.2.1 (the last release) breaks on a current Python stack; each fix below is tested in
``tests/test_compat.py``:

* **numpy 2** removed ``np.float_``, ``np.complex_`` and ``np.unicode_``. RecBole's ``Config`` assigns
  ``np.float = np.float_`` (AttributeError on every run) and its metrics still use ``np.float``.
  :func:`numpy_aliases` defines the old aliases RecBole reads, only where numpy lacks them.
* **pandas 3** (copy-on-write) turns RecBole's chained ``df[col].fillna(..., inplace=True)`` into a
  silent no-op: missing values stay missing. :func:`patch_pandas_fillna` replaces the two places
  (``Dataset._fill_nan`` and the sequence fields of ``Dataset._load_feat``).
* **pandas 3** also changed ``Series.agg(len)`` to return the length of the Series, not of each
  element: RecBole's ID remapping of ``token_seq`` fields then fails. :func:`_remap` uses ``map``.
* **torch >= 2.6** loads checkpoints with ``weights_only=True``; RecBole pickles its ``Config`` into
  them. The plugin's trainer (``trainer.py``) writes tensors and plain data only, so nothing is
  patched here for it.
* **ray**: ``recbole.quick_start`` imports ray at module level (no wheel for Python >= 3.12, broken
  with numpy 2). The plugin never imports ``recbole.quick_start``; :func:`assert_no_ray` is used by
  the tests to prove it.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

#: numpy aliases removed in numpy 1.24/2.0 that RecBole 1.2.1 still reads.
_NUMPY_ALIASES = {
    "bool": np.bool_,
    "int": np.int_,
    "float": np.float64,
    "float_": np.float64,
    "complex": np.complex128,
    "complex_": np.complex128,
    "object": np.object_,
    "str": np.str_,
    "long": np.int_,
    "unicode": np.str_,
    "unicode_": np.str_,
}

_applied = False


def numpy_aliases() -> None:
    """Define the numpy aliases RecBole 1.2.1 uses, only where this numpy lacks them."""
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def _fill_nan(self) -> None:
    """``Dataset._fill_nan`` without chained in-place assignment (works on pandas 2 and 3)."""
    from recbole.utils import FeatureType

    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(
                    lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                )


def _remap(self, remap_list) -> None:
    """``Dataset._remap`` with per-element lengths computed by ``map(len)`` (pandas 2 and 3)."""
    from recbole.utils import FeatureType

    if len(remap_list) == 0:
        return
    tokens, split_point = self._concat_remaped_tokens(remap_list)
    new_ids_list, mp = pd.factorize(tokens)
    new_ids_list = np.split(new_ids_list + 1, split_point)
    mp = np.array(["[PAD]"] + list(mp))
    token_id = {t: i for i, t in enumerate(mp)}
    for (feat, field, ftype), new_ids in zip(remap_list, new_ids_list):
        if field not in self.field2id_token:
            self.field2id_token[field] = mp
            self.field2token_id[field] = token_id
        if ftype == FeatureType.TOKEN:
            feat[field] = new_ids
        elif ftype == FeatureType.TOKEN_SEQ:
            lengths = feat[field].map(len).to_numpy()
            feat[field] = pd.Series(np.split(new_ids, np.cumsum(lengths)[:-1]), index=feat.index, dtype=object)


class _SeqFieldsFilledPandas:
    """A stand-in for the ``pd`` module inside ``recbole.data.dataset.dataset`` whose
    ``read_csv`` fills missing sequence fields with ``""`` (what RecBole's no-op fillna meant)."""

    def __getattr__(self, name):
        return getattr(pd, name)

    @staticmethod
    def read_csv(*args, **kwargs):
        df = pd.read_csv(*args, **kwargs)
        seq_columns = [c for c in df.columns if isinstance(c, str) and c.endswith("seq")]
        for column in seq_columns:
            df[column] = df[column].fillna("")
        return df


def patch_pandas_fillna() -> None:
    """Make RecBole's missing-value handling work under pandas copy-on-write."""
    from recbole.data.dataset import dataset as dataset_module

    dataset_module.Dataset._fill_nan = _fill_nan
    dataset_module.Dataset._remap = _remap
    dataset_module.pd = _SeqFieldsFilledPandas()


def apply() -> None:
    """Apply every fix once (idempotent). Called when the plugin is imported."""
    global _applied
    if _applied:
        return
    numpy_aliases()
    patch_pandas_fillna()
    _applied = True


def assert_no_ray() -> None:
    """Raise if ray or ``recbole.quick_start`` has been imported."""
    loaded = [m for m in ("ray", "recbole.quick_start") if m in sys.modules]
    if loaded:
        raise AssertionError(f"modules that must never be imported were imported: {loaded}")
