# shellcheck shell=sh disable=SC2034  # read by the scripts that source this file
# Pinned versions of the test cluster (sourced by testhosts/kube/*.sh). A change here builds a new set of
# binaries in a new cache directory.
K8S_VERSION=v1.34.4
K8S_COMMANDS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
PAUSE_VERSION=3.10.1
ETCD_VERSION=v3.6.16
CONTAINERD_VERSION=v2.2.9
TRAINER_VERSION=v2.3.0
JOBSET_VERSION=v0.12.0
GO_MIN=1.26.0
KUBE_CACHE=${KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-trainer/kube/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-containerd-$CONTAINERD_VERSION-trainer-$TRAINER_VERSION-jobset-$JOBSET_VERSION}
KUBE_BIN=$KUBE_CACHE/bin
