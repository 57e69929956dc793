"""``python -m logitdiv``: the command line (see `logitdiv.scoring.cli`)."""

import sys

from .scoring.cli import main

sys.exit(main())
