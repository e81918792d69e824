"""rank_env.py: print this node's name and its rank environment on one line."""

import os
import socket

names = ["NODE_RANK", "NNODES", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "FOO"]
print(socket.gethostname(), " ".join(f"{n}={os.environ.get(n)}" for n in names), flush=True)
