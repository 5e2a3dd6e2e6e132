import sys

from recbole_sasrec_ext.convert.cli import main

sys.exit(main())
