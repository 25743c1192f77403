"""`python -m lmlib ...` runs the command-line interface."""

from lmlib.cli import main

raise SystemExit(main())
