"""``python -m bptd.ocpp`` = ``bptd-ocpp``."""

import sys

from bptd.ocpp.cli import main

sys.exit(main())
