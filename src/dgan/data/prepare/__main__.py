"""``python -m dgan.data.prepare``: the command of :mod:`dgan.data.prepare`."""

import sys

from dgan.data.prepare.command import main

sys.exit(main())
