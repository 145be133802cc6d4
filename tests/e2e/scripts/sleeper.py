"""A job that writes its pid (its argument is the file) and then waits for a long time."""

import os
import sys
import time
from pathlib import Path

Path(sys.argv[1]).write_text(str(os.getpid()))
time.sleep(300)
