"""``python -m aar``: the ``aar`` command line (see ``aar --help``)."""

import sys

from aar.cli import main

if __name__ == "__main__":
    sys.exit(main())
