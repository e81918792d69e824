"""ticker.py PERIOD DURATION: print the wall-clock time and a count every PERIOD s for DURATION s."""

import sys
import time

period, duration = float(sys.argv[1]), float(sys.argv[2])
end = time.time() + duration
count = 0
while time.time() < end:
    print(f"tick {time.time():.6f} {count}", flush=True)
    count += 1
    time.sleep(period)
