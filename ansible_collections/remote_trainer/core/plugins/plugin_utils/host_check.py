"""remote_host's check, shared by its action plugin (remote_host_check) and training_job's one-step launch.

The probe script run with /bin/sh (no python needed on the host yet) prints HOME=, PYTHON=<path> <version>
<externally managed: 0|1> (the first usable candidate), OLD=<path> <version> (found but too old), READY=<key>
for each ready venv or system marker, RSYNC=1 when rsync is there, and for requirements that go into a
container's image, IMAGE=<the image's id>. `plan` turns its lines into what the host has and what this
requirements set needs; `validated_settings` checks the role's settings against its argument spec.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex

from ansible.errors import AnsibleActionFail

SETTINGS = (
    "python",
    "python_candidates",
    "python_min_version",
    "interpreter",
    "system_site_packages",
    "cache_dir",
    "requirements_file",
    "packages",
    "index_url",
    "extra_index_urls",
    "find_links",
    "no_index",
    "wheelhouse",
    "pip_extra_args",
    "image",
)
VERSION_CHECK = (
    "import os, sys, sysconfig; "
    'print("%d.%d.%d" % sys.version_info[:3], '
    'int(os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))); '
    "sys.exit(0 if sys.version_info[:2] >= ({major}, {minor}) else 3)"
)


def normalized_requirements(text: str, packages: list[str]) -> str:
    """What pip will install, read as pip reads a requirements file.

    Continued lines (a trailing backslash) are joined, comments (a line from #, or from a # after whitespace)
    dropped, whitespace stripped, blank lines dropped, order kept; option lines (--index-url ...) stay. A
    comment or a blank line neither changes the key nor builds a new venv. This text is also the set's
    requirements file on the host.
    """
    lines: list[str] = []
    open_line = ""
    for line in text.splitlines():
        if line.endswith("\\") and not re.match(r"\s*#", line):
            open_line += line.strip("\\")
        else:
            lines.append(open_line + ((" " + line) if re.match(r"\s*#", line) else line))
            open_line = ""
    kept = [re.sub(r"(^|\s+)#.*$", "", line).strip() for line in [*lines, open_line, *packages]]
    return "\n".join(line for line in kept if line)


def _sh_path(path: str) -> str:
    """A path for sh: `~/` becomes "$HOME"/, the rest is quoted."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def probe_script(settings: dict, image_id_needed: bool) -> str:
    """The one remote command of the check (see the module's docstring for what it prints)."""
    wanted = [settings["python"]] if settings["python"] else list(settings["python_candidates"])
    major, _dot, minor = str(settings["python_min_version"]).partition(".")
    check = VERSION_CHECK.format(major=int(major), minor=int(minor.split(".")[0] or 0))
    cache = _sh_path(settings["cache_dir"])
    parts = [
        'echo "HOME=$HOME"',
        "command -v rsync >/dev/null 2>&1 && echo RSYNC=1",
        f"for c in {' '.join(shlex.quote(c) for c in wanted)}; do "
        'p=$(command -v "$c" 2>/dev/null) || continue; '
        f'v=$("$p" -S -c {shlex.quote(check)} 2>/dev/null); rc=$?; '
        'if [ "$rc" = 0 ] && [ -n "$v" ]; then echo "PYTHON=$p $v"; break; '
        'elif [ -n "$v" ]; then echo "OLD=$p ${v% *}"; fi; done',
        f"for f in {cache}/venvs/*/.ready {cache}/system/*.ready; do "
        '[ -f "$f" ] && echo "READY=$(cat "$f")"; done',
    ]
    if image_id_needed:
        image = settings["image"]
        parts.append(
            f"echo IMAGE=$({shlex.quote(image['path'])} image inspect --format '{{{{.Id}}}}' "
            f"{shlex.quote(image['image'])} 2>/dev/null)"
        )
    return "; ".join(parts) + "; true"


def plan(lines: list[str], settings: dict, wanted: str, wheels: list[str]) -> dict:
    """What the probe found, and what this requirements set needs."""

    def first(prefix: str, default: str) -> str:
        return next((line[len(prefix) :] for line in lines if line.startswith(prefix)), default)

    home = first("HOME=", "~")
    found = first("PYTHON=", "").split(" ")
    too_old = [line[4:] for line in lines if line.startswith("OLD=")]
    ready = [line[6:] for line in lines if line.startswith("READY=")]
    cache = re.sub(r"^~(?=/|$)", home.replace("\\", "\\\\"), settings["cache_dir"])
    image = settings["image"] or {}
    # In a container's image: the set is keyed by the image's id and python, not the host's.
    in_image = bool(image) and bool(wanted)
    image_id = first("IMAGE=", "").strip() if in_image else ""
    key_input = (
        [image_id, image.get("python", "python3"), "image"]
        if in_image
        else [found[1] if len(found) > 1 else "", found[0], settings["interpreter"]]
    ) + [
        wanted,
        settings["index_url"],
        list(settings["extra_index_urls"]),
        list(settings["find_links"]),
        bool(settings["no_index"]),
        wheels,
        list(settings["pip_extra_args"]),
    ]
    if settings["system_site_packages"] and not in_image:
        key_input.append("system-site-packages")
    # The same text as Ansible's to_json | hash('sha256') gave: keys of venvs already built stay valid.
    key = hashlib.sha256(json.dumps(key_input).encode("utf-8")).hexdigest()[:16]
    venv = f"{cache}/venvs/{key}"
    uses_venv = settings["interpreter"] == "virtualenv" and bool(wanted) and not in_image
    is_ready = key in ready
    return {
        "home": home,
        "python": found[0],
        "version": found[1] if len(found) > 1 else "",
        "externally_managed": (found[2] if len(found) > 2 else "0") == "1",
        "too_old": too_old,
        "cache": cache,
        "key": key,
        "venv": venv,
        "requirements": wanted,
        "install": bool(wanted),
        "ready": is_ready,
        "uses_venv": uses_venv,
        "in_image": in_image,
        "action": ("cached" if is_ready else "installed") if wanted else "none",
        "run_python": f"{venv}/bin/python" if uses_venv else found[0],
        "rsync": "RSYNC=1" in lines,
    }


def report(p: dict, interpreter: str, local: bool) -> dict:
    """What the role publishes as remote_host_report (the driver's HostReport)."""
    return {
        "home": p["home"],
        "python": p["python"],
        "python_version": p["version"],
        "interpreter": interpreter,
        "venv": p["venv"] if p["uses_venv"] else "",
        "packages": p["venv"] if p["in_image"] else "",
        "key": p["key"],
        "action": p["action"],
        "rsync": p["rsync"],
        "local": local,
    }


def no_python_message(host: str, settings: dict, too_old: list[str]) -> str:
    looked = [settings["python"]] if settings["python"] else list(settings["python_candidates"])
    old = f"; too old: {', '.join(too_old)}" if too_old else ""
    return (
        f"no usable python on {host}: looked for {', '.join(looked)} "
        f"(need {settings['python_min_version']} or newer{old})"
    )


SPEC_FILE = os.path.join(
    os.path.dirname(__file__), "..", "..", "roles", "remote_host", "meta", "argument_specs.yml"
)


_OPTIONS: dict = {}


def spec_options() -> dict:
    """The options of the role's main entry point (meta/argument_specs.yml), read once per process."""
    if not _OPTIONS:
        import yaml

        with open(SPEC_FILE, encoding="utf-8") as f:
            specs = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["argument_specs"]
        _OPTIONS.update(specs["main"]["options"])
    return _OPTIONS


def validated_settings(values: dict) -> dict | None:
    """The role's settings (remote_host_* without the prefix) from `values` (variables by their full names),
    with the role's defaults filled in, checked against meta/argument_specs.yml; None when they do not pass
    (the role's own validation says why)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    options = spec_options()
    given = {k: v for k, v in values.items() if k in options}
    result = ArgumentSpecValidator(options).validate(given)
    if result.error_messages:
        return None
    return {name[len("remote_host_") :]: value for name, value in result.validated_parameters.items()}


def check_host(action, settings: dict, host: str) -> dict:
    """Probe the host over `action`'s connection, and plan this requirements set (see the docstring above)."""
    text = ""
    if settings["requirements_file"]:
        with open(action._find_needle("files", settings["requirements_file"]), encoding="utf-8") as f:
            text = f.read()
    wanted = normalized_requirements(text, [str(p) for p in settings["packages"]])
    wheels = (
        sorted(os.path.basename(p) for p in glob.glob(os.path.join(settings["wheelhouse"], "*")))
        if settings["wheelhouse"]
        else []
    )
    image_id_needed = bool(settings["image"]) and bool(wanted)
    res = action._low_level_execute_command(probe_script(settings, image_id_needed), executable=False)
    if res.get("rc") not in (0, None):
        raise AnsibleActionFail(
            f"the probe failed on {host} (rc {res.get('rc')}): {(res.get('stderr') or '').strip()}"
        )
    return plan((res.get("stdout") or "").splitlines(), settings, wanted, wheels)
