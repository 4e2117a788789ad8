"""`python -m axiom.cli ARGS`: the same as `axiom ARGS`."""

import sys

from axiom.cli import main

sys.exit(main())
