"""``python -m prospect``: the same as the ``prospect`` command."""

import sys

from prospect.cli import main

sys.exit(main())
