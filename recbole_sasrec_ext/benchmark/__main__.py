"""``python -m recbole_sasrec_ext.benchmark``: see ``cli.py``."""

import sys

from recbole_sasrec_ext.benchmark.cli import main

sys.exit(main())
