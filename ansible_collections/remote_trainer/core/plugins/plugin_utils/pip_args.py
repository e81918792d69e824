"""pip's arguments for remote_host's requirements, from the role's settings and the host's plan.

The plan is what remote_host_check found on the host (plugin_utils/host_check.py's `plan`): its cache
directory, whether the python is externally managed (PEP 668), whether requirements go into a container's
image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


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
    """The arguments pip install gets, in this order: the index URL, the extra index URLs, the find-links
    locations, the wheelhouse's copy on the host (plan's cache/wheelhouse) when there is a wheelhouse,
    --no-index, then for the system interpreter (not in an image) --user, and --break-system-packages when
    the python is externally managed (PEP 668's marker would refuse --user installs the user asked for), and
    last the extra arguments as given."""
    args: list[str] = []
    if index_url:
        args += ["--index-url", index_url]
    for url in extra_index_urls:
        args += ["--extra-index-url", url]
    for location in find_links:
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
