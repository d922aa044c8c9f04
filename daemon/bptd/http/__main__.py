import sys

from bptd.http.cli import main

sys.exit(main())
