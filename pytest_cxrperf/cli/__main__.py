"""``python -m pytest_cxrperf.cli``: the ``cxrperf`` command."""

import sys

from . import main

sys.exit(main())
