"""Make the table module importable from the tests in this directory."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
