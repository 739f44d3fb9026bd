"""``python -m hotline`` and the ``hotline`` console script."""

import sys

from hotline.cli import main

if __name__ == "__main__":
    sys.exit(main())
