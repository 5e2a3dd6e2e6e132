"""glibc's allocator tuned for training on the CPU: freed activation memory is kept, not returned.

A training step allocates and frees the same large activation buffers again and again. glibc's
defaults give a buffer above a dynamic threshold its own ``mmap`` and trim the heap's top back to
the kernel as soon as 128 KiB of it is free, so the next step's buffers arrive as fresh pages that
the kernel must fault in and zero: on this project's 2-core CPU, RecBole's SASRec on ml-100k spent
a third of its CPU time in the kernel that way (docs/results.md, "Quick suite"). Three
``mallopt`` settings keep the memory in the process instead:

* ``M_MMAP_THRESHOLD`` at its largest value (32 MiB on 64-bit glibc; fixed, which also stops
  glibc's dynamic threshold): buffers below it come from the heap and are reused;
* ``M_TRIM_THRESHOLD`` at 2 GiB (``mallopt``'s largest): free memory at the heap's top is kept;
* ``M_TOP_PAD`` 1 GiB: the heap grows in large steps (address space; pages are touched as used).

The computation is unchanged (the same numbers, bit for bit); a process keeps its peak heap until it
exits. :func:`tune_for_training` is called by the command line's training runs; a process whose
environment sets any ``MALLOC_*`` variable, or ``RECBOLE_SASREC_EXT_ALLOCATOR=system``, keeps its
settings. On a C library other than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

from recbole_sasrec_ext.common.errors import PluginError

#: glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

#: The largest ``M_MMAP_THRESHOLD`` glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: The largest value ``mallopt`` takes (a C int): free memory at the heap's top is handed back
#: only past 2 GiB.
TRIM_THRESHOLD_BYTES = 2**31 - 1
TOP_PAD_BYTES = 1024 * 1024 * 1024

#: ``(option, value)`` in the order they are set.
SETTINGS = (
    (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
    (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
    (M_TOP_PAD, TOP_PAD_BYTES),
)

#: ``RECBOLE_SASREC_EXT_ALLOCATOR=system`` keeps the C library's own settings.
OPT_OUT_VARIABLE = "RECBOLE_SASREC_EXT_ALLOCATOR"
#: The values of :data:`OPT_OUT_VARIABLE` (unset means ``tuned``).
CHOICES = ("tuned", "system")


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether to tune: not when the user chose (``MALLOC_*`` set, or the opt-out variable).
    Raises :class:`PluginError` naming the variable for a value other than :data:`CHOICES`."""
    choice = environ.get(OPT_OUT_VARIABLE, "tuned").strip().lower()
    if choice not in CHOICES:
        raise PluginError(
            f"environment variable {OPT_OUT_VARIABLE}={environ[OPT_OUT_VARIABLE]!r}: "
            f"expected one of {', '.join(CHOICES)}"
        )
    if choice == "system":
        return False
    return not any(name.startswith("MALLOC_") for name in environ)


def _glibc_mallopt():
    """glibc's ``mallopt``, or None on another C library (musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process
        libc.gnu_get_libc_version  # noqa: B018 (present in glibc only)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)  # int mallopt(int param, int value)
    mallopt.restype = ctypes.c_int
    return mallopt


def tune_for_training(environ: Mapping[str, str] | None = None) -> bool:
    """Apply :data:`SETTINGS` to this process's glibc allocator; return whether all were taken."""
    if not wanted(os.environ if environ is None else environ):
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    taken = [mallopt(option, value) == 1 for option, value in SETTINGS]  # all, even past a refusal
    return all(taken)
