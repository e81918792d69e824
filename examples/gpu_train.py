"""A small real training run: a regression MLP on synthetic data, on the GPU when there is one.

Plain `python gpu_train.py` trains on one device. Under torchrun (`driver train --launcher torchrun`)
every process joins a process group (NCCL on CUDA, gloo otherwise), wraps the model in
DistributedDataParallel and checks with an all_reduce that every rank sees the same world. Rank 0
writes outputs/model.pt and outputs/metrics.json, which the driver brings back.
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--batch", type=int, default=4096)
parser.add_argument("--hidden", type=int, default=1024)
parser.add_argument("--log-every", type=int, default=50)
parser.add_argument("--hold", type=float, default=0.0, help="seconds to keep the GPU busy after training")
parser.add_argument("--output", default="outputs")
opts = parser.parse_args()

distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
cuda = torch.cuda.is_available()
local_rank = int(os.environ.get("LOCAL_RANK", "0"))
if cuda:
    torch.cuda.set_device(local_rank)
device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
if distributed:
    dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
rank = dist.get_rank() if distributed else 0
world = dist.get_world_size() if distributed else 1

name = torch.cuda.get_device_name(device) if cuda else "cpu"
print(f"rank {rank}/{world} on {name} (torch {torch.__version__}, cuda {torch.version.cuda})", flush=True)

torch.manual_seed(1234 + rank)
true_w = torch.randn(64, 1, device=device, generator=torch.Generator(device).manual_seed(7))
model = torch.nn.Sequential(
    torch.nn.Linear(64, opts.hidden), torch.nn.ReLU(), torch.nn.Linear(opts.hidden, 1)
).to(device)
if distributed:
    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

start = time.perf_counter()
first = last = None
for step in range(1, opts.steps + 1):
    x = torch.randn(opts.batch, 64, device=device)
    y = x @ true_w + 0.01 * torch.randn(opts.batch, 1, device=device)
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if step == 1 or step % opts.log_every == 0 or step == opts.steps:
        last = loss.item()
        first = last if first is None else first
        if rank == 0:
            print(f"step {step}/{opts.steps}: loss={last:.5f}", flush=True)
if cuda:
    torch.cuda.synchronize(device)
seconds = time.perf_counter() - start

if distributed:
    ranks = torch.tensor([1.0], device=device)
    dist.all_reduce(ranks)
    assert int(ranks.item()) == world, f"all_reduce saw {ranks.item()} ranks, expected {world}"
    print(f"rank {rank}: all_reduce over {world} ranks ok", flush=True)

if rank == 0:
    out = Path(opts.output)
    out.mkdir(parents=True, exist_ok=True)
    state = model.module.state_dict() if distributed else model.state_dict()
    torch.save(state, out / "model.pt")
    metrics = {"device": name, "world": world, "steps": opts.steps, "first_loss": first,
               "last_loss": last, "seconds": round(seconds, 3)}
    (out / "metrics.json").write_text(json.dumps(metrics) + "\n")
    print(f"trained {opts.steps} steps in {seconds:.2f} s: loss {first:.4f} -> {last:.4f}", flush=True)

if opts.hold > 0:
    print(f"holding the device for {opts.hold:.0f} s", flush=True)
    deadline = time.time() + opts.hold
    a = torch.randn(2048, 2048, device=device)
    while time.time() < deadline:
        a = torch.tanh(a @ a)
        if cuda:
            torch.cuda.synchronize(device)

if distributed:
    dist.destroy_process_group()
if last is None or not last < first:
    raise SystemExit(f"loss did not go down: {first} -> {last}")
