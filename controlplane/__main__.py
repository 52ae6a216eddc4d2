"""``python -m controlplane <command>``: the command line (``controlplane.cli.main``)."""

import sys

from controlplane.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
