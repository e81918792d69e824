"""Preflight of a multi-node job, run with the job's python on every rank at once (one Ansible task).

preflight.py RANK NNODES MASTER_ADDR MASTER_PORT TIMEOUT
Rank 0 listens on MASTER_PORT (proving it is free) until every other rank has connected or the time is
up; the others connect to MASTER_ADDR:MASTER_PORT (proving they reach it), so that a rank that cannot is
the one that reports it. Every rank prints one JSON line with its python, torch and CUDA versions and
the result, and exits 1 when its part failed.
"""

import json
import platform
import socket
import sys
import time


def versions():
    found = {"python": platform.python_version(), "torch": None, "cuda": None}
    try:
        import torch

        found["torch"] = torch.__version__
        found["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
    except ImportError:
        pass
    return found


def listen(port, peers, timeout):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind(("0.0.0.0", port))
    except OSError as exc:
        return f"port {port} is not free on the master: {exc.strerror}"
    srv.listen(64)
    srv.settimeout(0.2)
    seen, deadline = 0, time.time() + timeout
    while seen < peers and time.time() < deadline:
        try:
            conn, _addr = srv.accept()
            conn.close()
            seen += 1
        except OSError:
            continue
    srv.close()
    return None  # missing peers report themselves


def connect(addr, port, timeout):
    deadline, error = time.time() + timeout, "timed out"
    while time.time() < deadline:
        try:
            socket.create_connection((addr, port), timeout=2).close()
            return None
        except OSError as exc:
            error = exc.strerror or str(exc)
            time.sleep(0.2)
    return f"cannot reach MASTER_ADDR:MASTER_PORT {addr}:{port} ({error})"


def main():
    rank, nnodes, addr, port, timeout = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        sys.argv[3],
        int(sys.argv[4]),
        float(sys.argv[5]),
    )
    error = listen(port, nnodes - 1, timeout) if rank == 0 else connect(addr, port, timeout)
    print(json.dumps({"rank": rank, "versions": versions(), "error": error}))
    sys.exit(1 if error else 0)


if __name__ == "__main__":
    main()
