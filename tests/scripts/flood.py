"""flood.py N: print N numbered lines as fast as possible."""

import sys

n = int(sys.argv[1])
write = sys.stdout.write
for i in range(n):
    write(f"line {i}\n")
