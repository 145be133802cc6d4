"""A job whose helper daemonizes the classic way: fork, fork again, the middle process exits, so the
grandchild loses its parent. The grandchild works (CPU) for a few seconds and writes its pid first."""

import os
import sys
import time
from pathlib import Path

pid_file = Path(sys.argv[1])
if os.fork() == 0:  # the middle process
    if os.fork() == 0:  # the grandchild: orphaned as soon as the middle one exits
        pid_file.write_text(str(os.getpid()))
        end = time.time() + 3.0
        while time.time() < end:
            sum(range(10_000))
        os._exit(0)
    os._exit(0)
os.wait()
time.sleep(3.5)
