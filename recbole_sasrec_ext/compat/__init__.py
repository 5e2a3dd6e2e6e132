"""What RecBole 1.2.1 needs to run on today's stack, applied by ``import recbole_sasrec_ext``.

RecBole 1.2.1 (the last release) breaks on a current Python stack. :func:`apply` (called by the
package import, idempotent) fixes it without importing torch, pandas or RecBole itself:

* numpy aliases (numpy only) are defined at once;
* every other fix belongs to one RecBole (or scipy) module and is applied when that module
  finishes loading (a ``sys.meta_path`` finder wraps its loader), or at once when it is already
  loaded. ``FIXES`` lists them; README's compatibility table says what each one repairs.

Each fix is small and tested in ``tests/test_compat.py``:

* **numpy 2** removed ``np.float_``, ``np.complex_``, ``np.unicode_`` (and ``bool8``, read by ray
  2.6.3); RecBole's ``Config`` assigns ``np.float = np.float_`` and its metrics use ``np.float``.
  :func:`numpy_aliases` defines the old names where numpy lacks them.
* **pandas 3** (copy-on-write) turns RecBole's chained ``df[col].fillna(..., inplace=True)`` into a
  silent no-op: :func:`_fill_nan` and :class:`_SeqFieldsFilledPandas` replace the two places.
* **pandas 3** changed ``Series.agg(len)`` to the length of the Series, not of each element.
  :func:`_agg_len_as_map` recompiles each RecBole method that uses it from RecBole's own source with
  ``.agg(len)`` read as ``.map(len)`` (and nothing else changed).
* **scipy >= 1.14**: ``dok_matrix`` is no longer a ``dict`` and lost ``_update``, which RecBole's
  graph models call; :func:`dok_update` gives it back (a plain dict update, as before).
* **torch >= 2.6** loads with ``weights_only=True`` and RecBole pickles its ``Config`` and models'
  extra objects into checkpoints: :mod:`recbole_sasrec_ext.recbole_checkpoints` makes RecBole's own
  trainers and ``load_data_and_model`` write tensors and plain data and load weights-only.
* **RecBole's SINE** switches on torch's autograd anomaly detection for the whole process when it
  is imported (as every RecBole sequential model import does): :func:`sine_anomaly_detection`.
* **ray**: ``recbole.quick_start`` imports ray at module level; the plugin never imports it.
  :func:`assert_no_ray` is used by the tests to prove it.
"""

from __future__ import annotations

import importlib.abc
import inspect
import os
import sys
import textwrap
import warnings
from typing import Callable

import numpy as np

#: numpy aliases removed in numpy 1.24/2.0 that RecBole 1.2.1 (and ray 2.6.3) still read.
_NUMPY_ALIASES = {
    "bool": np.bool_,
    "bool8": np.bool_,
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

#: Marker set on every function a fix installs (so that a fix is applied once).
_MARK = "_recbole_sasrec_ext_fix"


def numpy_aliases() -> None:
    """Define the numpy aliases RecBole 1.2.1 uses, only where this numpy lacks them."""
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def replace_attr(owner, name: str, new, fix: str) -> bool:
    """Set ``owner.name = new`` unless a fix already did; ``new.__wrapped__`` is the original.
    Returns whether it replaced anything."""
    old = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if getattr(old, _MARK, None) is not None:
        return False
    setattr(new, _MARK, fix)
    if old is not None:
        new.__wrapped__ = old
    setattr(owner, name, new)
    return True


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
    if getattr(func, _MARK, None) is not None:
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


# --- scipy >= 1.14 --------------------------------------------------------------------------
def _dok_update(self, data) -> None:
    """scipy < 1.14's ``dok_matrix._update``: add ``{(row, col): value}`` without checks."""
    self._dict.update(data)


def dok_update(module) -> None:
    """``scipy.sparse``: ``dok_matrix._update`` where scipy lacks it."""
    dok = module.dok_matrix
    if "_update" not in dir(dok) and hasattr(dok((1, 1)), "_dict"):
        replace_attr(dok, "_update", _dok_update, "scipy_dok_update")


# --- a RecBole leftover ----------------------------------------------------------------------
def sine_anomaly_detection(module) -> None:
    """RecBole's ``sine.py`` runs ``torch.autograd.set_detect_anomaly(True)`` when it is imported,
    and ``recbole.model.sequential_recommender`` imports it: every later backward pass of the
    process runs with anomaly detection (a debugging mode that slows training).
    Turned off again once."""
    import torch

    torch.autograd.set_detect_anomaly(False)


# --- torch >= 2.6 ---------------------------------------------------------------------------
def trainer_checkpoints(module) -> None:
    from recbole_sasrec_ext import recbole_checkpoints

    recbole_checkpoints.patch_trainers(module)


def quick_start_checkpoints(module) -> None:
    from recbole_sasrec_ext import recbole_checkpoints

    recbole_checkpoints.patch_quick_start(module)


#: module name -> the fixes applied when it has loaded (in this order).
FIXES: dict[str, tuple[Callable, ...]] = {
    "scipy.sparse": (dok_update,),
    "recbole.data.dataset.dataset": (pandas_fillna, agg_len_dataset),
    "recbole.data.dataset.sequential_dataset": (agg_len_sequential,),
    "recbole.data.dataset.kg_dataset": (agg_len_kg,),
    "recbole.model.sequential_recommender.sine": (sine_anomaly_detection,),
    "recbole.trainer.trainer": (trainer_checkpoints,),
    "recbole.quick_start.quick_start": (quick_start_checkpoints,),
    "recbole.quick_start": (quick_start_checkpoints,),
}


def _fix(name: str, module) -> None:
    for fix in FIXES[name]:
        fix(module)


class _FixingLoader(importlib.abc.Loader):
    """Runs the real loader, then the module's fixes."""

    def __init__(self, loader, name: str):
        self._loader = loader
        self._name = name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _fix(self._name, module)

    def __getattr__(self, attr):  # get_source, get_filename, is_package, ...
        return getattr(self._loader, attr)


class _FixingFinder(importlib.abc.MetaPathFinder):
    """Finds the modules in ``FIXES`` with the other finders and wraps their loaders."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in FIXES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _FixingLoader(spec.loader, fullname)
        return spec


def _finder_installed() -> bool:
    return any(isinstance(f, _FixingFinder) for f in sys.meta_path)


def apply() -> None:
    """Apply every fix (idempotent): numpy aliases now, module fixes now for loaded modules and
    on load for the others. Imports neither torch, pandas, scipy nor RecBole."""
    numpy_aliases()
    if not _finder_installed():
        sys.meta_path.insert(0, _FixingFinder())
    for name in FIXES:
        module = sys.modules.get(name)
        if module is not None:
            _fix(name, module)


def assert_no_ray() -> None:
    """Raise if ray or ``recbole.quick_start`` has been imported."""
    loaded = [m for m in ("ray", "recbole.quick_start") if m in sys.modules]
    if loaded:
        raise AssertionError(f"modules that must never be imported were imported: {loaded}")
