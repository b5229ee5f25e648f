"""``python -m ai_orchestration.cli``."""

import sys

from ai_orchestration.cli import main

sys.exit(main())
