"""``python -m nmn`` is the ``nmn`` command."""

import sys

from nmn.cli import main

if __name__ == "__main__":
    sys.exit(main())
