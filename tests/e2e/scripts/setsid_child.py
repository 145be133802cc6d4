"""A job that starts a helper in a new session (setsid, as daemons do) and exits while it still runs."""

import subprocess
import sys
import time
from pathlib import Path

helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
Path(sys.argv[1]).write_text(str(helper.pid))
time.sleep(0.5)
