"""sleeper.py TAG: print 'sleeping TAG', start a child that sleeps too, and sleep for 10 minutes."""

import subprocess
import sys
import time

tag = sys.argv[1]
child = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(600)", tag])
print(f"sleeping {tag}", flush=True)
time.sleep(600)
