"""counter.py N PERIOD CODE: print 'line i' for i < N every PERIOD s, write outputs/done.txt, exit CODE."""

import os
import sys
import time

n, period, code = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    print(f"line {i}", flush=True)
    time.sleep(period)
os.makedirs("outputs", exist_ok=True)
with open("outputs/done.txt", "w") as f:
    f.write("done\n")
print("end", flush=True)
sys.exit(code)
