"""``python -m bench [--quick]``; ``python -m bench soak [--quick]`` for the soak."""

import sys

from bench.run import main

sys.exit(main())
