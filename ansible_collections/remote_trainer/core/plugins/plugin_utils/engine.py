"""remote_host's container engine check: the probe script run with /bin/sh on the host, and what it printed.

The probe needs no python on the host (the role runs it with ansible.builtin.raw). It prints NAME=value
lines: UID and GID of the user, then for the first engine found on the PATH: ENGINE, PATH, and either
ERROR=<one line> (the engine's `info` fails: this user cannot use it) or ROOTLESS (1|0) and GPU (1|0, the
NVIDIA container toolkit is there: a CDI spec for nvidia.com/gpu for podman, the toolkit's hook or nvidia-ctk
for docker). No engine on the PATH: only UID and GID.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence

# Where podman (and the NVIDIA toolkit's `nvidia-ctk cdi generate`) look for CDI specs.
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
# `info --format` of each engine: podman says whether it is rootless; docker's security options name rootless.
PODMAN_INFO = "{{.Host.Security.Rootless}}"
DOCKER_INFO = "{{.ServerVersion}} {{.SecurityOptions}}"
# The engine's error is kept to one line of at most this many characters.
ERROR_WIDTH = 400


def engine_candidates(wanted_engine: str) -> list[str]:
    """The engines looked for, in order: auto is podman, else docker; otherwise only the one named."""
    return ["podman", "docker"] if wanted_engine == "auto" else [wanted_engine]


def engine_probe_script(wanted_engine: str, cdi_dirs: Sequence[str] = CDI_DIRS) -> str:
    """The probe as a /bin/sh script for the engine wanted (auto, podman or docker); every value is quoted.

    cdi_dirs are the directories searched for CDI specs (*.yaml, *.json) when the engine is podman.
    """
    engines = " ".join(shlex.quote(e) for e in engine_candidates(wanted_engine))
    specs = " ".join(f"{shlex.quote(d)}/*.{ext}" for d in cdi_dirs for ext in ("yaml", "json"))
    return f"""\
echo "UID=$(id -u)"
echo "GID=$(id -g)"
for e in {engines}; do
  p=$(command -v "$e" 2>/dev/null) || continue
  echo "ENGINE=$e"
  echo "PATH=$p"
  if [ "$e" = podman ]; then
    f={shlex.quote(PODMAN_INFO)}
  else
    f={shlex.quote(DOCKER_INFO)}
  fi
  out=$("$p" info --format "$f" 2>/dev/null) || {{
    err=$("$p" info --format "$f" 2>&1 | grep -v 'level=warning' | tr '\\n' ' ' | cut -c1-{ERROR_WIDTH})
    echo "ERROR=$err"
    exit 0
  }}
  case "$e:$out" in
    podman:true|docker:*rootless*) echo ROOTLESS=1 ;;
    *) echo ROOTLESS=0 ;;
  esac
  gpu=0
  if [ "$e" = podman ]; then
    for f in {specs}; do
      [ -f "$f" ] && grep -q 'nvidia.com/gpu' "$f" 2>/dev/null && gpu=1
    done
  else
    command -v nvidia-container-runtime-hook >/dev/null 2>&1 && gpu=1
    command -v nvidia-ctk >/dev/null 2>&1 && gpu=1
  fi
  echo "GPU=$gpu"
  exit 0
done
true
"""


def engine_probe_values(lines: Iterable[str]) -> dict[str, str]:
    """The probe's NAME=value lines as a dict (other lines, a login banner for one, are ignored; the last of a
    name wins)."""
    values: dict[str, str] = {}
    for line in lines:
        found = re.match(r"([A-Z]+)=(.*)$", line)
        if found:
            values[found.group(1)] = found.group(2)
    return values
