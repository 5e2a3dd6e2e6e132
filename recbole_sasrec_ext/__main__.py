import sys

from recbole_sasrec_ext.apps.cli import main

sys.exit(main())
