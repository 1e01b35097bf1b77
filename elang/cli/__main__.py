"""python -m elang.cli"""

import sys

from elang.cli import main

sys.exit(main())
