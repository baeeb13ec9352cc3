"""``python -m snnhw.cli``: the same as the ``snnhw`` command."""

import sys

from . import main

sys.exit(main())
