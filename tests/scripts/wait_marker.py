"""wait_marker.py PATH: print 'ready', wait (at most 60 s) until PATH exists, print 'got marker'."""

import os
import sys
import time

print("ready", flush=True)
deadline = time.time() + 60
while not os.path.exists(sys.argv[1]):
    if time.time() > deadline:
        print("marker never came")
        sys.exit(9)
    time.sleep(0.05)
print("got marker")
