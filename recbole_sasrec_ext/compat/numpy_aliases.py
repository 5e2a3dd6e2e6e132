"""numpy 2 removed ``np.float_``, ``np.complex_``, ``np.unicode_`` (and ``bool8``, read by ray
2.6.3); RecBole's ``Config`` assigns ``np.float = np.float_`` and its metrics use ``np.float``."""

from __future__ import annotations

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


def numpy_aliases() -> None:
    """Define the numpy aliases RecBole 1.2.1 uses, only where this numpy lacks them."""
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)
