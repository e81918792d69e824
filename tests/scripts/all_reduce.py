"""all_reduce.py: torch.distributed (gloo) sums each process's rank+1 over the whole world."""

import os
import sys

import torch
import torch.distributed as dist

dist.init_process_group("gloo")  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
node = os.environ["NODE_RANK"]
# One write per line: the processes of a node share stdout, and print() under PYTHONUNBUFFERED writes the
# text and the newline separately, so two ranks' lines could be glued together.
sys.stdout.write(f"rank {dist.get_rank()} of {dist.get_world_size()} on node {node}: sum {value.item():g}\n")
dist.destroy_process_group()
