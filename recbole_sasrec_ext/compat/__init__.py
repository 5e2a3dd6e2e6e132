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
  :func:`.numpy_aliases.numpy_aliases` defines the old names where numpy lacks them.
* **pandas 3** (copy-on-write) turns RecBole's chained ``df[col].fillna(..., inplace=True)`` into a
  silent no-op: :mod:`.dataset` replace the two places.
* **pandas 3** changed ``Series.agg(len)`` to the length of the Series, not of each element.
  :func:`.dataset._agg_len_as_map` recompiles each RecBole method that uses it from RecBole's
  own source with ``.agg(len)`` read as ``.map(len)`` (and nothing else changed).
* **scipy >= 1.14**: ``dok_matrix`` is no longer a ``dict`` and lost ``_update``, which RecBole's
  graph models call; :func:`.scipy_sparse.dok_update` gives it back (a plain dict update, as
  before).
* **torch >= 2.6** loads with ``weights_only=True`` and RecBole pickles its ``Config`` and models'
  extra objects into checkpoints: :mod:`.trainer` and :mod:`.quick_start` make RecBole's own
  trainers and ``load_data_and_model`` write tensors and plain data and load weights-only.
* **RecBole's SINE** switches on torch's autograd anomaly detection for the whole process when it
  is imported (as every RecBole sequential model import does): :func:`.sine.sine_anomaly_detection`.
* **the plugin's models in RecBole's own** ``Config``: :mod:`.configurator` gives a plugin model
  the settings the plugin's ``Config`` gives it (defaults, training negatives, reading encoding)
  while the config resolves, so both routes train the same run.
* **ray**: ``recbole.quick_start`` imports ray at module level; the plugin never imports it.
  :func:`assert_no_ray` is used by the tests to prove it.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Callable

from recbole_sasrec_ext.compat.dataset import (
    agg_len_dataset,
    agg_len_kg,
    agg_len_sequential,
    pandas_fillna,
)
from recbole_sasrec_ext.compat.numpy_aliases import numpy_aliases
from recbole_sasrec_ext.compat.scipy_sparse import dok_update
from recbole_sasrec_ext.compat.sine import sine_anomaly_detection


# --- torch >= 2.6 (these modules import torch: loaded only when RecBole's module is) ---------
def trainer_checkpoints(module) -> None:
    """``recbole.trainer.trainer``: weights-only checkpoints (:mod:`.trainer`)."""
    from recbole_sasrec_ext.compat.trainer import patch_trainers

    patch_trainers(module)


def quick_start_checkpoints(module) -> None:
    """``recbole.quick_start``: ``load_data_and_model`` weights-only (:mod:`.quick_start`)."""
    from recbole_sasrec_ext.compat.quick_start import patch_quick_start

    patch_quick_start(module)


# --- the plugin's models in RecBole's own Config -------------------------------------------
def configurator_plugin_models(module) -> None:
    """``recbole.config.configurator``: a plugin model's settings resolved as the plugin's
    ``Config`` resolves them (:mod:`.configurator`)."""
    from recbole_sasrec_ext.compat.configurator import patch_configurator

    patch_configurator(module)


#: The patch table: RecBole (or scipy) module name -> the fixes applied when it has loaded (in
#: this order). README's compatibility table says what each one repairs.
FIXES: dict[str, tuple[Callable, ...]] = {
    "scipy.sparse": (dok_update,),
    "recbole.data.dataset.dataset": (pandas_fillna, agg_len_dataset),
    "recbole.data.dataset.sequential_dataset": (agg_len_sequential,),
    "recbole.data.dataset.kg_dataset": (agg_len_kg,),
    "recbole.model.sequential_recommender.sine": (sine_anomaly_detection,),
    "recbole.config.configurator": (configurator_plugin_models,),
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
