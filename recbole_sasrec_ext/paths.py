"""Where the package lives: the folder that holds ``recbole_sasrec_ext/`` (the repository root in a
source checkout, ``site-packages`` when installed)."""

from pathlib import Path

#: The folder holding the ``recbole_sasrec_ext`` package.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent
#: The source checkout's root (equal to ``PACKAGE_PARENT``; it has ``properties/`` only there).
REPO_ROOT = PACKAGE_PARENT
