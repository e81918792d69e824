#!/bin/sh
# Usage: testhosts/torch-wheelhouse.sh DEST [REQUIREMENT...]
#        testhosts/torch-wheelhouse.sh --lock FILE   (write the pins of torch's dependencies to FILE)
#
# Fill DEST with the wheels a test host (Debian 12, CPython 3.11, x86_64, no
# network) needs for
#     pip install --no-index --find-links DEST torch==2.13.0
# i.e. PyTorch and all its dependencies (plus any REQUIREMENTs given, e.g.
# numpy, which torch imports if present), as binary wheels for cp311 /
# manylinux (glibc <= 2.36, bookworm's). PyTorch's CPU build is taken where
# this machine's pip can find it (`pip config list`, e.g. a find-links
# directory holding torch-2.13.0+cpu); otherwise PyPI's build, which is the
# CUDA one (about 4 GB with its nvidia-* wheels) and runs on the CPU too.
# Keep DEST outside the clone (the Makefile's default is under
# ~/.cache/remote-trainer, keyed by the version), so that a fresh clone does
# not download it again.
#
# Idempotent: DEST/.torch-wheelhouse records the request and the wheels'
# sha256; when it matches, nothing is downloaded (a few seconds to verify).
# Every (re)fill is then checked offline: the request must resolve from DEST
# alone, with no pip config and no index, to one torch (a +cpu build has no
# CUDA wheels beside it).
#
# Pinned: with TORCH_CONSTRAINTS=FILE (the Makefile gives testhosts/torch-constraints.txt) every dependency
# of torch is taken at the version FILE pins, and FILE's content is part of the request, so a new release of
# sympy or triton changes nothing until `make lock` rewrites FILE (--lock resolves the newest set from the
# index's metadata, without downloading the wheels).
#
# Environment: TORCH_VERSION (default 2.13.0), TORCH_CONSTRAINTS (see above), PYTHON (default python3.11,
# else python3), GLIBC_MINOR (default 36, bookworm's glibc 2.36: wheels tagged
# manylinux_2_17 up to manylinux_2_<GLIBC_MINOR>, manylinux2014/2010/1, for
# x86_64).
set -eu

log() { echo "torch-wheelhouse.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[ $# -ge 1 ] || die "usage: $0 DEST [REQUIREMENT...] | --lock FILE"
lock=""
if [ "$1" = --lock ]; then
    [ $# -eq 2 ] || die "usage: $0 --lock FILE"
    lock=$2
    set -- "$(mktemp -d)"
fi
dest=$1
shift
version=${TORCH_VERSION:-2.13.0}
case $version in *[!0-9.]* | "") die "TORCH_VERSION must be a plain version such as 2.13.0: $version" ;; esac
glibc_minor=${GLIBC_MINOR:-36}
if [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
elif command -v python3.11 >/dev/null 2>&1; then
    python=python3.11
else
    python=python3
fi
marker=.torch-wheelhouse
key="torch=$version${*:+ $*} python=3.11 abi=cp311 glibc=2.$glibc_minor arch=x86_64"
constraints=${TORCH_CONSTRAINTS:-}
if [ -n "$constraints" ] && [ -z "$lock" ]; then
    [ -r "$constraints" ] || die "TORCH_CONSTRAINTS names no readable file: $constraints"
    key="$key constraints=$(sha256sum <"$constraints" | cut -c1-16)"
fi
# pip (23.x) does not widen one --platform to older manylinux tags: list them all.
target="--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311"
minor=$glibc_minor
while [ "$minor" -ge 17 ]; do
    target="$target --platform manylinux_2_${minor}_x86_64"
    minor=$((minor - 1))
done
target="$target --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64"

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
# One fill at a time per DEST.
exec 9>"$dest/.torch-wheelhouse.lock"
flock 9

up_to_date() {
    [ -s "$dest/$marker" ] || return 1
    [ "$(head -n 1 "$dest/$marker")" = "$key" ] || return 1
    (cd "$dest" && tail -n +2 "$marker" | sha256sum --check --quiet --status 2>/dev/null)
}

if up_to_date; then
    log "$dest is up to date ($(du -sh "$dest" | cut -f1))"
    exit 0
fi
rm -f "$dest/$marker"

tmp=$(mktemp -d)
# shellcheck disable=SC2064  # expand now: $tmp and $dest are fixed
if [ -n "$lock" ]; then
    trap "rm -rf '$tmp' '$dest'" EXIT INT TERM
else
    trap "rm -rf '$tmp'" EXIT INT TERM
fi
# The constraints as pip options (a copy at a path without spaces: $target and the extras are split on spaces).
pin=""
if [ -n "$constraints" ] && [ -z "$lock" ]; then
    cp "$constraints" "$tmp/constraints.txt"
    pin="-c $tmp/constraints.txt"
fi

if [ -n "$lock" ]; then
    # The newest torch $version set for the hosts' platform, from the index's metadata (no wheel downloaded).
    resolve() {
        # shellcheck disable=SC2086  # $target: several options
        "$python" -m pip install --disable-pip-version-check --quiet --dry-run --ignore-installed \
            --target "$tmp/target" $target --report "$tmp/lock.json" "$1" >"$tmp/pip.log" 2>&1
    }
    resolve "torch==$version+cpu" || resolve "torch==$version" || {
        cat "$tmp/pip.log" >&2
        die "cannot resolve torch $version for the hosts"
    }
    {
        sed -n '/^#/p' "$lock" 2>/dev/null
        "$python" -c '
import json, sys
pins = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in json.load(open(sys.argv[1]))["install"])
print("\n".join(f"{n}=={v}" for n, v in pins if n.lower() != "torch"))
' "$tmp/lock.json"
    } >"$lock.new"
    mv "$lock.new" "$lock"
    log "$lock: $(grep -vc '^#' "$lock") pins for torch $version"
    exit 0
fi
download() {
    log "pip download $* (cp311, manylinux glibc <= 2.$glibc_minor, x86_64) into $dest"
    # shellcheck disable=SC2086  # $target: several options
    "$python" -m pip download --quiet --disable-pip-version-check --progress-bar off \
        --dest "$dest" $target $pin "$@" >"$tmp/pip.log" 2>&1
}
start=$(date +%s)
shift_args=$*
# shellcheck disable=SC2086  # the extra requirements: several words
if download "torch==$version+cpu" $shift_args; then
    spec="torch==$version+cpu"
elif grep -q 'No matching distribution found for torch==' "$tmp/pip.log"; then
    log "no CPU build of torch $version for this pip: taking PyPI's (CUDA) build"
    spec="torch==$version"
    # shellcheck disable=SC2086
    download "$spec" $shift_args || {
        cat "$tmp/pip.log" >&2
        die "pip download failed"
    }
else
    cat "$tmp/pip.log" >&2
    die "pip download failed"
fi
log "downloaded in $(($(date +%s) - start)) s"

# The request must resolve from DEST alone: no config (no /opt/wheels, no index).
report=$tmp/report.json
# shellcheck disable=SC2086
env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
    "$python" -m pip install --disable-pip-version-check --quiet --dry-run --ignore-installed \
    --no-index --find-links "$dest" --target "$tmp/target" $target $pin \
    --report "$report" "$spec" "$@" >&2 \
    || die "$spec $* does not resolve from $dest alone"
names=$("$python" -c '
import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    print(item["metadata"]["name"].lower(), item["metadata"]["version"])
' "$report")
echo "$names" | grep -q "^torch $version" || die "no torch $version in $dest: $names"
if echo "$names" | grep -q '^torch .*+cpu$' && echo "$names" | grep -q '^nvidia-'; then
    die "CUDA wheels beside a CPU torch in $dest: $names"
fi

(
    cd "$dest"
    echo "$key"
    find . -maxdepth 1 -name '*.whl' | LC_ALL=C sort | sed 's|^\./||' | xargs sha256sum
) >"$dest/$marker.tmp"
mv "$dest/$marker.tmp" "$dest/$marker"
log "$dest: $(echo "$names" | tr '\n' ' ')($(du -sh "$dest" | cut -f1))"
