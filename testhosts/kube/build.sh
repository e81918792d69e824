#!/bin/sh
# Build the single-node test cluster's binaries from upstream Go modules (nothing is downloaded but
# modules from the Go proxy), only what is missing:
#   Kubernetes  k8s.io/kubernetes   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#   etcd        go.etcd.io/etcd/server/v3 (+ etcdctl is not needed)
#   containerd  github.com/containerd/containerd/v2: containerd, ctr, containerd-shim-runc-v2
#   Trainer     github.com/kubeflow/trainer/v2: trainer-controller-manager
#   JobSet      sigs.k8s.io/jobset (the version Trainer's go.mod requires): manager
#   pause       build/pause/linux/pause.c of the Kubernetes module, static
# Everything lands in $KUBE_CACHE/bin (default ~/.cache/remote-trainer/kube/<versions>/bin), keyed by the
# versions below, so CI on a machine that has built them once does not build again. GOMODCACHE and
# GOCACHE are Go's own (outside the clone).
# Usage: testhosts/kube/build.sh        prints the bin directory on stdout
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testhosts/kube/versions.sh
. "$here/versions.sh"

log() { echo "kube/build.sh: $*" >&2; }
die() { log "$*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH (Go $GO_MIN+ is needed)"
bin=$KUBE_BIN
mkdir -p "$bin" "$KUBE_CACHE/src"
exec 9>"$KUBE_CACHE/.build.lock"
flock 9

export GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
ldflags_k8s="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
-X k8s.io/component-base/version.gitMajor=$(echo "$K8S_VERSION" | sed 's/^v\([0-9]*\)\..*/\1/') \
-X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | sed 's/^v[0-9]*\.\([0-9]*\)\..*/\1/') \
-X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"

missing() {
    for b in "$@"; do [ -x "$bin/$b" ] || return 0; done
    return 1
}

# A wrapper module around a main module whose go.mod has replace directives (go install refuses those).
# $1 dir, $2 module@version, $3.. extra go.mod lines
wrapper() {
    dir=$1
    mv=$2
    shift 2
    mkdir -p "$dir"
    {
        echo "module remote-trainer.test/$(basename "$dir")"
        echo
        echo "go $GO_MIN"
        for line in "$@"; do echo "$line"; done
    } >"$dir/go.mod"
    (cd "$dir" && go mod edit -require="$mv")
}

timed() {
    name=$1
    shift
    start=$(date +%s)
    "$@"
    log "$name built in $(($(date +%s) - start)) s"
}

build_k8s() {
    dir=$KUBE_CACHE/src/kubernetes
    go mod download "k8s.io/kubernetes@$K8S_VERSION"
    kmod=$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION
    staging_version=v0.${K8S_VERSION#v1.}
    # Every staging module k/k replaces with ./staging/... is replaced here by its published tag.
    replaces=$(sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*|\1|p' "$kmod/go.mod")
    [ -n "$replaces" ] || die "no staging replaces found in $kmod/go.mod"
    wrapper "$dir" "k8s.io/kubernetes@$K8S_VERSION"
    for m in $replaces; do
        (cd "$dir" && go mod edit -replace="$m=$m@$staging_version")
    done
    pkgs=""
    for c in $K8S_COMMANDS; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c"; done
    # shellcheck disable=SC2086,SC2046  # $pkgs and the list: several packages
    (cd "$dir" && go get $(for p in $pkgs; do echo "$p@$K8S_VERSION"; done) && go build -ldflags "$ldflags_k8s" -o "$bin/" $pkgs)
    # pause, static, for the sandbox image
    gcc -Os -static -DVERSION="$PAUSE_VERSION" -o "$bin/pause" "$kmod/build/pause/linux/pause.c"
}

build_etcd() {
    dir=$KUBE_CACHE/src/etcd
    go mod download "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    emod=$(go env GOMODCACHE)/go.etcd.io/etcd/server/v3@$ETCD_VERSION
    # etcd's server module replaces its sibling modules with ../...: the same tags from the proxy.
    wrapper "$dir" "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    # shellcheck disable=SC2013  # module paths: one word each
    for m in $(sed -n 's|^[[:space:]]*\(go.etcd.io/etcd/[a-z0-9/]*\) => \.\./.*|\1|p' "$emod/go.mod"); do
        (cd "$dir" && go mod edit -replace="$m=$m@$ETCD_VERSION")
    done
    (cd "$dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go build -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
}

build_containerd() {
    dir=$KUBE_CACHE/src/containerd
    wrapper "$dir" "github.com/containerd/containerd/v2@$CONTAINERD_VERSION"
    p=github.com/containerd/containerd/v2/cmd
    (cd "$dir" && go get "$p/containerd@$CONTAINERD_VERSION" "$p/ctr@$CONTAINERD_VERSION" \
        "$p/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
        && go build -tags no_btrfs -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
            -o "$bin/" "$p/containerd" "$p/ctr" "$p/containerd-shim-runc-v2")
}

build_trainer() {
    dir=$KUBE_CACHE/src/trainer
    wrapper "$dir" "github.com/kubeflow/trainer/v2@$TRAINER_VERSION"
    (cd "$dir" && go get "github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager@$TRAINER_VERSION" \
        && go build -ldflags "-s -w" -o "$bin/trainer-controller-manager" \
            github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager)
}

build_jobset() {
    dir=$KUBE_CACHE/src/jobset
    wrapper "$dir" "sigs.k8s.io/jobset@$JOBSET_VERSION"
    (cd "$dir" && go get "sigs.k8s.io/jobset@$JOBSET_VERSION" \
        && go build -ldflags "-s -w" -o "$bin/jobset-manager" sigs.k8s.io/jobset)
}

# shellcheck disable=SC2086
missing $K8S_COMMANDS pause && timed "kubernetes $K8S_VERSION" build_k8s
missing etcd && timed "etcd $ETCD_VERSION" build_etcd
missing containerd ctr containerd-shim-runc-v2 && timed "containerd $CONTAINERD_VERSION" build_containerd
missing trainer-controller-manager && timed "trainer $TRAINER_VERSION" build_trainer
missing jobset-manager && timed "jobset $JOBSET_VERSION" build_jobset
echo "$bin"
