import sys

from recbole_sasrec_ext.cli import main

sys.exit(main())
