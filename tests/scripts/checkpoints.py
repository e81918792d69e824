"""checkpoints.py: print "up", then sleep; on SIGTERM write outputs/checkpoint.txt, say so, exit 143."""

import signal
import sys
import time


def save(signum, frame):
    with open("outputs/checkpoint.txt", "w") as f:
        f.write("step 1\n")
    print("checkpoint saved", flush=True)
    sys.exit(143)


signal.signal(signal.SIGTERM, save)
print("up", flush=True)
time.sleep(600)
