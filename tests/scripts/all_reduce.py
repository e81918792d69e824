"""all_reduce.py: torch.distributed (gloo) sums each process's rank+1 over the whole world."""

import os

import torch
import torch.distributed as dist

dist.init_process_group("gloo")  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
node = os.environ["NODE_RANK"]
print(f"rank {dist.get_rank()} of {dist.get_world_size()} on node {node}: sum {value.item():g}")
dist.destroy_process_group()
