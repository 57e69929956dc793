"""``python -m logitdiv``: the command line (see `logitdiv.cli`)."""

import sys

from .cli import main

sys.exit(main())
