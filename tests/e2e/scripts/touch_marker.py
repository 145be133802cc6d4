"""No torch: writes a marker file (its only argument) and exits 0. Shows whether a job ran at all."""

import sys
from pathlib import Path

Path(sys.argv[1]).write_text("ran")
