"""ticker.py PERIOD DURATION: print the wall-clock time every PERIOD seconds for DURATION seconds."""

import sys
import time

period, duration = float(sys.argv[1]), float(sys.argv[2])
end = time.time() + duration
while time.time() < end:
    print(f"tick {time.time():.6f}", flush=True)
    time.sleep(period)
