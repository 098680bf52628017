"""``python -m nmlsim``: the command line (nmlsim.cli)."""
import sys

from .cli import main

sys.exit(main())
