"""Whether a multi-node job can start on its ranks, from every rank's preflight (files/preflight.py).

A rank's probe is the JSON line its preflight printed: {"rank": ..., "versions": {name: version or null},
"error": null or why its part failed}; none when the rank never got to its preflight.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence


def _versions(versions: Mapping) -> str:
    """name=version,... sorted by name ignoring case (a missing version reads None)."""
    return ",".join(
        f"{name}={value}" for name, value in sorted(versions.items(), key=lambda kv: kv[0].lower())
    )


def preflight_errors(
    ranks: Sequence[str], probes: Sequence[Mapping | None], play_hosts: Collection[str]
) -> list[str]:
    """Why the job cannot start, one line each; empty when every rank is ready.

    ranks are the job's hosts in rank order, probes their probes in the same order (none or empty: that rank
    has none), play_hosts the hosts still in the play. A rank not in the play or without a probe failed
    before the preflight; a rank whose probe has an error failed it. When no rank failed, the versions of all
    ranks must be the same (compared ignoring case), else one line lists each rank's.
    """
    errors: list[str] = []
    versions: dict[str, str] = {}  # host: its versions, name=version,...
    for rank, (host, probe) in enumerate(zip(ranks, probes, strict=True)):
        if host not in play_hosts or not probe:
            errors.append(f"{host} (rank {rank}) failed before the preflight")
        elif probe.get("error") is not None:
            errors.append(f"{host} (rank {rank}): {probe['error']}")
        else:
            versions[host] = _versions(probe.get("versions") or {})
    if not errors and len({text.lower() for text in versions.values()}) > 1:
        errors.append(
            "versions differ between ranks: " + "; ".join(f"{host} {text}" for host, text in versions.items())
        )
    return errors
