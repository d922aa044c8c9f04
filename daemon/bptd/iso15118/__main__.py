"""``python -m bptd.iso15118``: the bptd-iso15118 command line."""

import sys

from bptd.iso15118.cli import main

sys.exit(main())
