"""``python -m testbed.apiserver``: see ``testbed.apiserver.main``."""

import sys

from testbed.apiserver.main import main

sys.exit(main())
