"""A tiny training script: prints where it runs, a few 'epochs', and exits 0."""

import argparse
import platform
import time

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--sleep", type=float, default=0.2)
opts = parser.parse_args()

print(f"hello from {platform.node()} (python {platform.python_version()})")
for epoch in range(1, opts.epochs + 1):
    time.sleep(opts.sleep)
    print(f"epoch {epoch}/{opts.epochs}: loss={1.0 / epoch:.3f}")
print("done")
