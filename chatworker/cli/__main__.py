"""``python -m chatworker.cli``: the same as the ``chatworker`` command."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())
