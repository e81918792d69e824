#!/bin/sh
# Build the SSH test-host images, only what is missing or out of date:
#   localhost/debian-min:bookworm                       debootstrap minbase (no registry needed)
#   localhost/remote-trainer-testhost:bookworm          testhosts/image, target testhost
#   localhost/remote-trainer-testhost-nopython:bookworm testhosts/image, target testhost-nopython
#   localhost/remote-trainer-testhost-podman:bookworm   testhosts/image, target testhost-podman
#   localhost/remote-trainer-testhost-docker:bookworm   testhosts/image, target testhost-docker
#   localhost/remote-trainer-job-python:bookworm        testhosts/image, target job-python
#   localhost/remote-trainer-testhost-slurm:bookworm    testhosts/slurm, on testhost (the Slurm test cluster)
# The host images carry a label with a hash of testhosts/image plus the base
# image ID; a change to either rebuilds them. FORCE=1 rebuilds everything,
# base included. The Debian mirror is the one this machine's apt sources name for
# the suite, or MIRROR. Needs root (debootstrap) and a configured podman
# (.ci/setup-podman.sh).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
context="$here/image"
suite=bookworm
mirror=${MIRROR:-}
base=localhost/debian-min:$suite
image=localhost/remote-trainer-testhost:$suite
image_nopython=localhost/remote-trainer-testhost-nopython:$suite
image_podman=localhost/remote-trainer-testhost-podman:$suite
image_docker=localhost/remote-trainer-testhost-docker:$suite
image_job=localhost/remote-trainer-job-python:$suite
image_slurm=localhost/remote-trainer-testhost-slurm:$suite
slurm_context="$here/slurm"
label=remote-trainer.testhost.hash
# Version of the base image's recipe (build_base); a base without it, or with another, is made again.
base_label=remote-trainer.base.version
base_version=2
force=${FORCE:-0}

log() { echo "build-image.sh: $*" >&2; }

# The first Debian mirror this machine's apt sources name for SUITE (deb822 .sources files, then one-line
# .list files), so that no mirror is written here.
apt_mirror() {
    python3 - "$1" <<'PY'
import glob, re, sys
suite = sys.argv[1]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    with open(path) as f:
        stanzas = f.read().split("\n\n")
    for stanza in stanzas:
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or line[:1].isspace() or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.split()
        if (
            "deb" in fields.get("types", [])
            and suite in fields.get("suites", [])
            and fields.get("enabled", ["yes"])[0].lower() != "no"
            and fields.get("uris")
        ):
            print(fields["uris"][0])
            sys.exit(0)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            print(words[1])
            sys.exit(0)
sys.exit(1)
PY
}

image_exists() { podman image exists "$1"; }

build_base() {
    if [ -z "$mirror" ]; then
        mirror=$(apt_mirror "$suite") || {
            log "no Debian mirror for $suite in this machine's apt sources (/etc/apt/sources.list*): set MIRROR=URL"
            exit 1
        }
    fi
    root=$(mktemp -d /var/tmp/debian-min.XXXXXX)
    # The tree's top is the image's /: 0755, as on any system (mktemp's 0700 would lock every user but root
    # out of the whole image, say a job run with --user).
    chmod 0755 "$root"
    # shellcheck disable=SC2064  # expand now: $root is fixed
    trap "rm -rf '$root'" EXIT INT TERM
    log "debootstrap $suite from $mirror"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
        tail -n 30 "$root.log" >&2
        rm -f "$root.log"
        exit 1
    }
    rm -f "$root.log"
    # 204 MB -> ~120 MB; podman supplies /dev, resolv.conf and hostname at run time.
    rm -rf "${root:?}"/var/cache/apt/archives/*.deb "${root:?}"/var/cache/apt/*.bin \
        "${root:?}"/var/lib/apt/lists/* "${root:?}"/var/log/* "${root:?}"/dev/* \
        "${root:?}"/etc/resolv.conf "${root:?}"/etc/hostname
    log "podman import $base"
    tar --numeric-owner -C "$root" -c . \
        | podman import --quiet --change 'CMD ["/bin/bash"]' --change "LABEL $base_label=$base_version" - "$base" \
            >/dev/null
    rm -rf "$root"
    trap - EXIT INT TERM
}

# Hash of a build context (names, modes, contents) and of its base image's ID: CONTEXT BASE.
context_hash() {
    base_id=$(podman image inspect --format '{{.Id}}' "$2")
    (
        cd "$1"
        find . -type f | LC_ALL=C sort | while read -r f; do
            printf '%s %s\n' "$f" "$(stat -c %a "$f")"
            sha256sum "$f"
        done
        echo "base $base_id"
    ) | sha256sum | cut -c1-64
}

current_hash() {  # IMAGE [LABEL]: the value of the label (default: the host images' hash label)
    podman image inspect --format "{{index .Labels \"${2:-$label}\"}}" "$1" 2>/dev/null || true
}

# One build at a time on this machine (parallel test sessions call this too).
exec 9>/run/lock/remote-trainer-testhost-build.lock
flock 9

# A base made by an older version of this script (its label differs) is made again.
if [ "$force" = 1 ] || [ "$(current_hash "$base" "$base_label")" != "$base_version" ]; then
    build_base
fi

build_target() {  # TARGET TAG [CONTEXT BASE]: a TARGET of "-" is the context's only stage
    if [ "$force" != 1 ] && [ "$(current_hash "$2")" = "$want" ]; then
        log "$2 is up to date"
        return
    fi
    log "podman build $2 (target $1)"
    target=
    [ "$1" = - ] || target="--target=$1"
    # shellcheck disable=SC2086  # $target: one option or none
    podman build --quiet $target --build-arg "BASE_IMAGE=${4:-$base}" \
        --label "$label=$want" -t "$2" "${3:-$context}" >/dev/null
}

want=$(context_hash "$context" "$base")
build_target testhost "$image"
build_target testhost-nopython "$image_nopython"
build_target testhost-podman "$image_podman"
build_target testhost-docker "$image_docker"
build_target job-python "$image_job"
# The Slurm nodes: its own context on top of testhost, so that a change to one rebuilds only what it feeds.
want=$(context_hash "$slurm_context" "$image")
build_target - "$image_slurm" "$slurm_context" "$image"
# Untagged leftovers of earlier builds (ignore failures: in use, or none).
podman image prune -f >/dev/null 2>&1 || true
