"""`python -m stacklstm ...`: the stacklstm command (stacklstm.cli)."""

import sys

from .cli import main

sys.exit(main())
