#!/usr/bin/python3
"""Entry point of the PKSM testbed harness: see harness/pksmtb/cli.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pksmtb.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
