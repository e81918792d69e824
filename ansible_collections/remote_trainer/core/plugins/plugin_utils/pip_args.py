"""pip's arguments and environment for remote_host's requirements, from the role's settings and the host's
plan.

Index URLs (which often carry a user and a token: https://user:token@host/simple) and find-links URLs reach
pip through its environment (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS), never its argv: a command
line is readable by every user of the host (/proc/PID/cmdline), a process's environment only by its owner.

The plan is what remote_host_check found on the host (plugin_utils/host_check.py's `plan`): its cache
directory, whether the python is externally managed (PEP 668), whether requirements go into a container's
image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def is_url(location: str) -> bool:
    return "://" in location


def pip_env(
    index_url: str = "", extra_index_urls: Iterable[str] = (), find_links: Iterable[str] = ()
) -> dict:
    """pip's environment for the index options that may hold credentials: the index URL, the extra index URLs
    and the find-links locations that are URLs (space-separated, as pip reads these variables)."""
    env = {}
    if index_url:
        env["PIP_INDEX_URL"] = index_url
    if list(extra_index_urls):
        env["PIP_EXTRA_INDEX_URL"] = " ".join(extra_index_urls)
    urls = [location for location in find_links if is_url(location)]
    if urls:
        env["PIP_FIND_LINKS"] = " ".join(urls)
    return env


def pip_args(
    plan: Mapping,
    index_url: str = "",
    extra_index_urls: Iterable[str] = (),
    find_links: Iterable[str] = (),
    wheelhouse: str = "",
    no_index: bool = False,
    interpreter: str = "virtualenv",
    extra_args: Iterable[str] = (),
) -> list[str]:
    """The arguments pip install gets, in this order: the find-links locations that are paths on the host
    (URLs, like the index URLs, go in pip_env's environment and are not taken here), the wheelhouse's copy on
    the host (plan's cache/wheelhouse) when there is a wheelhouse,
    --no-index, then for the system interpreter (not in an image) --user, and --break-system-packages when
    the python is externally managed (PEP 668's marker would refuse --user installs the user asked for), and
    last the extra arguments as given."""
    args: list[str] = []
    for location in find_links:
        if not is_url(location):
            args += ["--find-links", location]
    if wheelhouse:
        args += ["--find-links", f"{plan['cache']}/wheelhouse"]
    if no_index:
        args.append("--no-index")
    if interpreter == "system" and not plan["in_image"]:
        args.append("--user")
        if plan["externally_managed"]:
            args.append("--break-system-packages")
    args += extra_args
    return args
