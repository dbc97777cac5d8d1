"""``python -m nmn.serve [serve] PATH ...`` and ``python -m nmn.serve predict URL ...``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
