"""How a compatibility fix replaces an attribute of a RecBole (or scipy) object: once, keeping the
original as ``__wrapped__``."""

from __future__ import annotations

#: Marker set on every function a fix installs (so that a fix is applied once).
MARK = "_recbole_sasrec_ext_fix"


def replace_attr(owner, name: str, new, fix: str) -> bool:
    """Set ``owner.name = new`` unless a fix already did; ``new.__wrapped__`` is the original.
    Returns whether it replaced anything."""
    old = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if getattr(old, MARK, None) is not None:
        return False
    setattr(new, MARK, fix)
    if old is not None:
        new.__wrapped__ = old
    setattr(owner, name, new)
    return True
