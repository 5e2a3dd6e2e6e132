"""``recbole.data.dataset``: pandas 3 fixes (copy-on-write fillna, ``Series.agg(len)``)."""

from __future__ import annotations

import inspect
import os
import textwrap
import warnings

import numpy as np

from recbole_sasrec_ext.compat.patching import MARK, replace_attr


# --- pandas 3 -------------------------------------------------------------------------------
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
                    lambda x, dtype=dtype: np.array([], dtype=dtype) if isinstance(x, float) else x
                )


class _SeqFieldsFilledPandas:
    """A stand-in for the ``pd`` module inside ``recbole.data.dataset.dataset`` whose
    ``read_csv`` fills missing sequence fields with ``""`` (what RecBole's no-op fillna meant),
    reads without quoting and checks that it got one row per data line (atomic files have no
    quoting: :data:`recbole_sasrec_ext.data.atomic.READ_CSV_STRICT`)."""

    _recbole_sasrec_ext_fix = "pandas_fillna"

    def __getattr__(self, name):
        import pandas as pd

        return getattr(pd, name)

    @staticmethod
    def read_csv(*args, **kwargs):
        import pandas as pd

        from recbole_sasrec_ext.data.atomic import READ_CSV_STRICT, check_rows_read

        df = pd.read_csv(*args, **{**READ_CSV_STRICT, **kwargs})
        if args and isinstance(args[0], (str, os.PathLike)):
            check_rows_read(args[0], len(df))
        seq_columns = [c for c in df.columns if isinstance(c, str) and c.endswith("seq")]
        for column in seq_columns:
            df[column] = df[column].fillna("")
        return df


def pandas_fillna(module) -> None:
    """``recbole.data.dataset.dataset``: missing values filled under pandas copy-on-write."""
    replace_attr(module.Dataset, "_fill_nan", _fill_nan, "pandas_fillna")
    if not isinstance(module.pd, _SeqFieldsFilledPandas):
        module.pd = _SeqFieldsFilledPandas()


def _agg_len_as_map(cls: type, name: str, count: int) -> None:
    """Recompile ``cls.name`` from RecBole's source with ``.agg(len)`` -> ``.map(len)``.

    ``count`` is how many times RecBole 1.2.1's method says ``.agg(len)``; on any other source
    the method is left alone with a warning (the fix was made for 1.2.1 only)."""
    func = cls.__dict__[name]
    if getattr(func, MARK, None) is not None:
        return
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as exc:
        warnings.warn(
            f"recbole_sasrec_ext: {cls.__name__}.{name} left unfixed: {exc}", stacklevel=2
        )
        return
    found = source.count(".agg(len)")
    if found != count:
        warnings.warn(
            f"recbole_sasrec_ext: {cls.__name__}.{name} left unfixed: expected {count} "
            f"'.agg(len)', found {found} (not RecBole 1.2.1?)",
            stacklevel=2,
        )
        return
    # blank lines keep RecBole's line numbers in tracebacks
    padded = "\n" * (func.__code__.co_firstlineno - 1) + source.replace(".agg(len)", ".map(len)")
    namespace: dict = {}
    code = compile(padded, func.__code__.co_filename, "exec")
    exec(code, func.__globals__, namespace)  # noqa: S102 - RecBole's own source, one token changed
    replace_attr(cls, name, namespace[name], "pandas_agg_len")


def agg_len_dataset(module) -> None:
    """``recbole.data.dataset.dataset``: per-element lengths of sequence fields."""
    for name, count in (("_normalize", 1), ("_discretization", 2), ("_remap", 1)):
        _agg_len_as_map(module.Dataset, name, count)


def agg_len_sequential(module) -> None:
    """``recbole.data.dataset.sequential_dataset``: item list lengths of benchmark files."""
    _agg_len_as_map(module.SequentialDataset, "_benchmark_presets", 1)


def agg_len_kg(module) -> None:
    """``recbole.data.dataset.kg_dataset``: entity remapping of sequence fields."""
    _agg_len_as_map(module.KnowledgeBasedDataset, "_reset_ent_remapID", 1)
