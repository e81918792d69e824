"""exit_with.py CODE | signal NAME: print a line, then exit with CODE or die from signal NAME."""

import os
import signal
import sys

print("about to end", flush=True)
if sys.argv[1] == "signal":
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
sys.exit(int(sys.argv[1]))
