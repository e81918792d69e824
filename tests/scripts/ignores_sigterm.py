"""ignores_sigterm.py TAG: ignore SIGTERM, print "ignoring TAG", sleep 10 minutes (only SIGKILL ends it)."""

import signal
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(f"ignoring {sys.argv[1]}", flush=True)
time.sleep(600)
