"""Train and evaluate one model: ``python run_recbole.py --model SASRec --dataset ml-100k``."""

import sys

from recbole_sasrec_ext.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
