"""``python -m recbole_sasrec_ext similar --bundle DIR --item T``: see :mod:`.cli`."""

from recbole_sasrec_ext.serving.cli import similar_main as main

__all__ = ["main"]
