"""``python -m nmn`` is the ``nmn`` command."""

import sys

from nmn.cli import main

sys.exit(main())
