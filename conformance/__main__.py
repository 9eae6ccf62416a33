"""``python -m conformance``: the commands live in ``conformance/cli.py``."""

import sys

from conformance.cli import main

if __name__ == "__main__":
    sys.exit(main())
