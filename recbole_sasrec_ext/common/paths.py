"""Where the package lives: the folder that holds ``recbole_sasrec_ext/`` (the repository root in a
source checkout, ``site-packages`` when installed)."""

import re
from importlib import resources
from pathlib import Path

#: The folder holding the ``recbole_sasrec_ext`` package (this file is in its ``common/``).
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent
#: The source checkout's root (equal to ``PACKAGE_PARENT``; it has ``properties/`` only there).
REPO_ROOT = PACKAGE_PARENT


def properties_dir() -> Path:
    """The plugin's ``properties/`` folder: the installed ``recbole_sasrec_ext.properties`` package,
    or the source checkout's ``properties/`` (no torch or RecBole import)."""
    try:
        installed = Path(str(resources.files("recbole_sasrec_ext.properties")))
        if (installed / "overall.yaml").is_file():
            return installed
    except ModuleNotFoundError:
        pass
    return REPO_ROOT / "properties"


#: Data set names: a letter or digit, then letters, digits, ``.``, ``_``, ``-`` (no path parts;
#: also used in log and result file names). The one pattern of config validation, benchmark
#: suites and the converters.
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
