"""`python -m safeship` runs the CLI."""

import sys

from safeship.cli.main import main

sys.exit(main())
