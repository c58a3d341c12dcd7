"""`python -m stacktune`: the same as the `stacktune` command."""

import sys

from stacktune.search.cli import main

if __name__ == "__main__":
    sys.exit(main())
