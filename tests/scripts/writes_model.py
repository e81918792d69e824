"""writes_model.py TAG SECONDS: write TAG into outputs/model.txt, then sleep SECONDS (two jobs overlap)."""

import sys
import time

with open("outputs/model.txt", "w") as f:
    f.write(sys.argv[1] + "\n")
print(f"model {sys.argv[1]}", flush=True)
time.sleep(float(sys.argv[2]))
