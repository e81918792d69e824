"""A single-node Kubernetes for the tests, from binaries built by ``testhosts/kube/build.sh``.

Test infrastructure beside the sshd test hosts, not a product feature. As root on this machine:
etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet and kube-proxy run as
processes of this machine (no systemd needed); pods run in containerd with runc and a CNI bridge. Images
are never pulled: the pause, Kubeflow Trainer and JobSet images are built with podman from the built
binaries, tagged with the upstream names and imported into containerd. Kubeflow Trainer (with JobSet)
is then installed by the project's own ``kubeflow_trainer`` role from the upstream manifests in Go's
module cache (one change: JobSet's manifests come from its module instead of a GitHub release URL).

    python3 testhosts/kube/cluster.py up     # build what is missing, start; wait: node Ready, Trainer up
    python3 testhosts/kube/cluster.py down   # stop every process; remove containers, mounts, devices, rules
    python3 testhosts/kube/cluster.py env    # KUBECONFIG=... KUBE_BIN=... for a shell
    python3 testhosts/kube/cluster.py leftovers   # what of the cluster is still here (exit 1 if any)

Files: ``.state/kube/`` (kubeconfig, certificates, logs, pid files, manifests) in the checkout; the
node's data under ``/var/lib/rtkube`` and ``/run/rtkube``. containerd's image store is kept across
``down`` (a warm ``up`` imports nothing); everything else is made anew by each ``up``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STATE = Path(os.environ.get("KUBE_STATE", REPO / ".state" / "kube"))
DATA = Path("/var/lib/rtkube")
RUN = Path("/run/rtkube")
CONTAINERD_SOCK = RUN / "containerd" / "containerd.sock"
NODE = "rtkube-node"
# The pods' bridge, made before the CNI plugin uses it: its address (the pods' gateway) is the node's
# address too (API server, kubelet), reachable from pods and local to this machine.
BRIDGE = "rtkbr0"
POD_CIDR = "10.234.0.0/24"
NODE_IP = "10.234.0.1"
SERVICE_CIDR = "10.235.0.0/24"
SERVICE_IP = "10.235.0.1"
API_PORT = 6443
ETCD_PORT = 23790
ETCD_PEER_PORT = 23800
CNI_BIN = "/usr/lib/cni"
NAMESPACE = "k8s.io"
TRAINER_NAMESPACE = "kubeflow-system"
# Start order; down stops them in reverse.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
)


class KubeError(RuntimeError):
    """The cluster could not be built, started or stopped; the message says what and where to look."""


def log(msg: str) -> None:
    print(f"kube: {msg}", file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    """The pinned versions and cache paths of versions.sh, as the shell sees them."""
    out = subprocess.run(
        ["sh", "-c", 'set -a; . "$0"; env', str(HERE / "versions.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    keys = ("K8S_VERSION", "PAUSE_VERSION", "TRAINER_VERSION", "JOBSET_VERSION", "KUBE_BIN", "KUBE_CACHE")
    return {k: env[k] for k in keys}


V = versions()
BIN = Path(V["KUBE_BIN"])
PAUSE_IMAGE = f"registry.k8s.io/pause:{V['PAUSE_VERSION']}"
TRAINER_IMAGE = f"ghcr.io/kubeflow/trainer/trainer-controller-manager:{V['TRAINER_VERSION']}"
JOBSET_IMAGE = f"registry.k8s.io/jobset/jobset:{V['JOBSET_VERSION']}"
KUBECONFIG = STATE / "kubeconfig"


def run(
    *args: str | Path, check: bool = True, timeout: float = 600, **kw
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise KubeError(f"{' '.join(map(str, args))} exited {res.returncode}: {res.stderr.strip()[-2000:]}")
    return res


def env_path() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


# --- certificates (openssl) ---------------------------------------------------------------------------


def _openssl_cert(name: str, subject: str, sans: str = "", server: bool = False) -> None:
    pki = STATE / "pki"
    key, csr, crt = pki / f"{name}.key", pki / f"{name}.csr", pki / f"{name}.crt"
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    run("openssl", "req", "-new", "-key", key, "-subj", subject, "-out", csr)
    ext = pki / f"{name}.ext"
    usage = "serverAuth" if server else "clientAuth"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
    lines.append(f"extendedKeyUsage={usage}")
    if sans:
        lines.append(f"subjectAltName={sans}")
    ext.write_text("\n".join(lines) + "\n")
    run(
        "openssl", "x509", "-req", "-in", csr, "-CA", pki / "ca.crt", "-CAkey", pki / "ca.key",
        "-CAcreateserial", "-days", "30", "-sha256", "-extfile", ext, "-out", crt,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()


def make_pki() -> None:
    pki = STATE / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", pki / "ca.key")
    run(
        "openssl", "req", "-x509", "-new", "-key", pki / "ca.key", "-subj", "/CN=rtkube-ca", "-days", "30",
        "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", pki / "ca.crt",
    )  # fmt: skip
    sans = ",".join(
        [
            f"IP:{NODE_IP}",
            f"IP:{SERVICE_IP}",
            "IP:127.0.0.1",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    _openssl_cert("apiserver", "/CN=kube-apiserver", sans, server=True)
    _openssl_cert("kubelet-serving", f"/CN={NODE}", f"IP:{NODE_IP},DNS:{NODE}", server=True)
    _openssl_cert("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
    _openssl_cert("admin", "/O=system:masters/CN=kubernetes-admin")
    _openssl_cert("controller-manager", "/CN=system:kube-controller-manager")
    _openssl_cert("scheduler", "/CN=system:kube-scheduler")
    _openssl_cert("kubelet", f"/O=system:nodes/CN=system:node:{NODE}")
    _openssl_cert("kube-proxy", "/CN=system:kube-proxy")
    run("openssl", "genrsa", "-out", pki / "sa.key", "2048")
    run("openssl", "rsa", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub")


def write_kubeconfig(path: Path, user: str) -> None:
    pki = STATE / "pki"

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "rtkube",
                "cluster": {
                    "server": f"https://{NODE_IP}:{API_PORT}",
                    "certificate-authority-data": b64(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pki / f"{user}.crt"),
                    "client-key-data": b64(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "rtkube", "context": {"cluster": "rtkube", "user": user}}],
        "current-context": "rtkube",
    }
    path.write_text(json.dumps(config, indent=1) + "\n")
    os.chmod(path, 0o600)


# --- processes --------------------------------------------------------------------------------------


def pid_file(name: str) -> Path:
    return STATE / "pids" / f"{name}.pid"


def running(name: str) -> int | None:
    try:
        pid = int(pid_file(name).read_text())
        exe = os.readlink(f"/proc/{pid}/exe")
    except (OSError, ValueError):
        return None
    return pid if Path(exe).name == name else None


def start(name: str, *args: str | Path) -> None:
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    (STATE / "pids").mkdir(parents=True, exist_ok=True)
    with open(STATE / "logs" / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            [str(BIN / name), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env_path(),
            cwd=STATE,
        )
    pid_file(name).write_text(f"{proc.pid}\n")


def wait_for(what: str, check, timeout: float, component: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component and running(component) is None:
            raise KubeError(
                f"{component} exited while waiting for {what}: see {STATE / 'logs' / component}.log"
            )
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.5)
    where = f": see {STATE / 'logs' / component}.log" if component else ""
    raise KubeError(f"timed out after {timeout:.0f} s waiting for {what}{where}")


def https_ok(url: str) -> bool:
    pki = STATE / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:  # our own https URL
        return resp.status == 200


def kubectl(*args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    return run(BIN / "kubectl", "--kubeconfig", KUBECONFIG, *args, check=check, timeout=timeout, **kw)


def ctr(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    return run(BIN / "ctr", "--address", CONTAINERD_SOCK, "-n", NAMESPACE, *args, check=check, **kw)


# --- up ---------------------------------------------------------------------------------------------


def build() -> None:
    log("building what is missing (testhosts/kube/build.sh)")
    res = subprocess.run(["sh", str(HERE / "build.sh")], stdout=subprocess.DEVNULL, check=False)
    if res.returncode != 0:
        raise KubeError("testhosts/kube/build.sh failed (its output above)")


def network() -> None:
    if run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "replace", f"{NODE_IP}/{POD_CIDR.split('/')[1]}", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    cni = DATA / "cni" / "net.d"
    cni.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "1.0.0",
        "name": "rtkube",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # No masquerade: pods reach this machine and the test hosts' containers by routing alone,
                # and no iptables rule of the CNI is left behind.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(DATA / "cni" / "ipam"),
                },
            }
        ],
    }
    (cni / "10-rtkube.conflist").write_text(json.dumps(conflist, indent=1) + "\n")


def start_control_plane() -> None:
    pki = STATE / "pki"
    etcd_dir = DATA / "etcd"
    shutil.rmtree(etcd_dir, ignore_errors=True)
    start(
        "etcd", "--name", "rtkube", "--data-dir", etcd_dir,
        "--listen-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
        "--advertise-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
        "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
        "--initial-cluster", f"rtkube=http://127.0.0.1:{ETCD_PEER_PORT}",
        "--listen-metrics-urls", "", "--log-level", "warn",
    )  # fmt: skip
    wait_for(
        "etcd",
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{ETCD_PORT}/health", timeout=2).status == 200,
        60,
        "etcd",
    )
    start(
        "kube-apiserver",
        f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
        f"--bind-address={NODE_IP}", f"--advertise-address={NODE_IP}", f"--secure-port={API_PORT}",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        # Webhook Services resolve to their endpoints' IPs (no kube-proxy needed on the API server's path).
        "--enable-aggregator-routing=true",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    )  # fmt: skip
    wait_for(
        "the API server", lambda: https_ok(f"https://{NODE_IP}:{API_PORT}/readyz"), 120, "kube-apiserver"
    )
    for user in ("controller-manager", "scheduler", "kubelet", "kube-proxy"):
        write_kubeconfig(STATE / f"{user}.kubeconfig", user)
    cm = STATE / "controller-manager.kubeconfig"
    start(
        "kube-controller-manager",
        f"--kubeconfig={cm}", f"--authentication-kubeconfig={cm}", f"--authorization-kubeconfig={cm}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--root-ca-file={pki / 'ca.crt'}", f"--service-account-private-key-file={pki / 'sa.key'}",
        "--use-service-account-credentials=true", "--controllers=*", "--leader-elect=false",
        "--bind-address=127.0.0.1", f"--service-cluster-ip-range={SERVICE_CIDR}", "--v=1",
    )  # fmt: skip
    sched = STATE / "scheduler.kubeconfig"
    start(
        "kube-scheduler",
        f"--kubeconfig={sched}", f"--authentication-kubeconfig={sched}",
        f"--authorization-kubeconfig={sched}",
        "--leader-elect=false", "--bind-address=127.0.0.1", "--v=1",
    )  # fmt: skip


def start_node() -> None:
    pki = STATE / "pki"
    toml = f"""version = 3
root = "{DATA / "containerd"}"
state = "{RUN / "containerd"}"

[grpc]
  address = "{CONTAINERD_SOCK}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  # Root here lacks CAP_SYS_RESOURCE: no oom_score_adj below containerd's own (the sandbox's -998 fails).
  restrict_oom_score_adj = true
  # Network namespaces under the state directory, so that down finds every one.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_BIN}"]
    conf_dir = "{DATA / "cni" / "net.d"}"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/bin/runc"
        Root = "{RUN / "runc"}"
        SystemdCgroup = false
"""
    (STATE / "containerd.toml").write_text(toml)
    start("containerd", "--config", STATE / "containerd.toml")
    wait_for("containerd", lambda: ctr("version").returncode == 0, 60, "containerd")
    load_images()
    kubelet_config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCK}",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        # A test machine's disk may be nearly full: never evict, never collect the imported images.
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "0%", "imagefs.available": "0%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 30,
    }
    (STATE / "kubelet.json").write_text(json.dumps(kubelet_config, indent=1) + "\n")
    start(
        "kubelet", f"--config={STATE / 'kubelet.json'}", f"--kubeconfig={STATE / 'kubelet.kubeconfig'}",
        f"--hostname-override={NODE}", f"--node-ip={NODE_IP}", f"--root-dir={DATA / 'kubelet'}",
        "--oom-score-adj=0", "--v=1",
    )  # fmt: skip
    proxy_config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(STATE / "kube-proxy.kubeconfig")},
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": NODE,
        "conntrack": {"maxPerCore": 0},
        "oomScoreAdj": 0,
        "nodePortAddresses": [f"{NODE_IP}/32"],
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
    }
    (STATE / "kube-proxy.json").write_text(json.dumps(proxy_config, indent=1) + "\n")
    start("kube-proxy", f"--config={STATE / 'kube-proxy.json'}", "--v=1")
    wait_for("the node to be Ready", node_ready, 180, "kubelet")
    wait_for(
        "the default service account",
        lambda: kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        60,
        "kube-controller-manager",
    )


def node_ready() -> bool:
    res = kubectl(
        "get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False
    )
    return res.stdout.strip() == "True"


# --- images -----------------------------------------------------------------------------------------


def podman_image_id(ref: str) -> str | None:
    res = run("podman", "image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return res.stdout.strip() or None if res.returncode == 0 else None


def build_image(ref: str, containerfile: str, files: dict[str, Path]) -> None:
    """podman build from a tiny context, labelled with the binaries' hash: rebuilt only when they change."""
    digest = run("sha256sum", *files.values()).stdout
    label = run("sh", "-c", 'printf %s "$0" | sha256sum | cut -c1-32', digest + containerfile).stdout.strip()
    if podman_image_id(ref):
        have = run(
            "podman", "image", "inspect", "--format", '{{index .Labels "rtkube.hash"}}', ref
        ).stdout.strip()
        if have == label:
            return
    with tempfile.TemporaryDirectory() as ctx:
        for name, src in files.items():
            shutil.copy2(src, Path(ctx) / name)
        (Path(ctx) / "Containerfile").write_text(containerfile)
        log(f"podman build {ref}")
        run("podman", "build", "-q", "--label", f"rtkube.hash={label}", "-t", ref, ctx, timeout=900)


def import_image(ref: str) -> None:
    """Into containerd's k8s.io namespace (what the CRI sees), unless it holds the same image already."""
    want = podman_image_id(ref)
    if want is None:
        raise KubeError(f"no podman image {ref}")
    have = ctr("images", "ls", f"name=={ref}", check=False).stdout
    # Beside containerd's store, which outlives down and a fresh clone: the podman image it came from.
    marker = DATA / "image-ids" / (ref.replace("/", "_").replace(":", "_") + ".id")
    if ref in have and marker.is_file() and marker.read_text().strip() == want:
        return
    log(f"importing {ref} into containerd")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        archive = Path(tmp) / "image.tar"
        run("podman", "save", "--format", "docker-archive", "-o", archive, ref, timeout=900)
        ctr("images", "import", "--no-unpack=false", archive, timeout=900)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(want + "\n")


def load_images() -> None:
    base = "localhost/debian-min:bookworm"
    if podman_image_id(base) is None:
        raise KubeError(f"no podman image {base}: run `make images` (testhosts/build-image.sh)")
    build_image(
        PAUSE_IMAGE,
        'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n',
        {"pause": BIN / "pause"},
    )
    controller = f'FROM {base}\nCOPY manager /manager\nUSER 65532:65532\nENTRYPOINT ["/manager"]\n'
    build_image(TRAINER_IMAGE, controller, {"manager": BIN / "trainer-controller-manager"})
    build_image(JOBSET_IMAGE, controller, {"manager": BIN / "jobset-manager"})
    for ref in (PAUSE_IMAGE, TRAINER_IMAGE, JOBSET_IMAGE):
        import_image(ref)


# --- Kubeflow Trainer -------------------------------------------------------------------------------


def modcache(module: str) -> Path:
    path = Path(run("go", "env", "GOMODCACHE").stdout.strip()) / module
    if not path.is_dir():
        run("go", "mod", "download", module)
    return path


def trainer_manifests() -> Path:
    """Trainer's manifests tree from its module, with the JobSet release URL replaced by JobSet's own
    config/default (what that release manifest is built from), image named as in the release."""
    dest = STATE / "manifests"
    shutil.rmtree(dest, ignore_errors=True)
    trainer = modcache(f"github.com/kubeflow/trainer/v2@{V['TRAINER_VERSION']}") / "manifests"
    jobset = modcache(f"sigs.k8s.io/jobset@{V['JOBSET_VERSION']}") / "config"
    shutil.copytree(trainer, dest / "trainer", copy_function=shutil.copyfile)
    shutil.copytree(jobset, dest / "jobset", copy_function=shutil.copyfile)
    release = dest / "jobset-release"
    release.mkdir()
    (release / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - ../jobset/default\n"
        "images:\n  - name: controller\n"
        "    newName: us-central1-docker.pkg.dev/k8s-staging-images/jobset/jobset\n"
        f"    newTag: {V['JOBSET_VERSION']}\n"
    )
    third = dest / "trainer" / "third-party" / "jobset" / "kustomization.yaml"
    text = third.read_text()
    url = f"https://github.com/kubernetes-sigs/jobset/releases/download/{V['JOBSET_VERSION']}/manifests.yaml"
    if url not in text:
        raise KubeError(f"{third} no longer names {url}: update trainer_manifests()")
    third.write_text(text.replace(url, "../../../jobset-release"))
    return dest / "trainer" / "overlays" / "manager"


def install_trainer() -> None:
    overlay = trainer_manifests()
    log("installing Kubeflow Trainer and JobSet (roles/kubeflow_trainer)")
    venv = REPO / ".venv" / "bin"
    env = {
        **env_path(),
        "PATH": f"{venv}:{BIN}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(KUBECONFIG),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    }
    res = subprocess.run(
        [
            str(venv / "ansible-playbook"), "-i", "localhost,",
            str(REPO / "ansible_collections/remote_trainer/core/playbooks/trainer.yml"),
            "-e", f"kubeflow_trainer_manifests={overlay}",
        ],
        env=env, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    (STATE / "logs" / "kubeflow_trainer.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise KubeError(f"installing Kubeflow Trainer failed: see {STATE / 'logs' / 'kubeflow_trainer.log'}")


def install_runtime(
    inventory: Path, ssh_key: Path, known_hosts: Path, work: Path
) -> subprocess.CompletedProcess[str]:
    """`make cluster-up CLUSTER=existing` against this cluster: the runner image built on the local base
    (pip trusting this machine's CA bundle) and imported into its containerd, Trainer from the local
    upstream manifests, the `remote` runtime with these files."""
    extra = work / "cluster-up-vars.json"
    extra.write_text(
        json.dumps(
            {
                "kubeflow_trainer_manifests": str(trainer_manifests()),
                "runner_image_base": "localhost/debian-min:bookworm",
                "runner_image_build_args": [
                    "--build-arg", "PIP_CERT=/run/host-ca.crt",
                    "--volume", "/etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro",
                ],
            }
        )
    )  # fmt: skip
    return subprocess.run(
        [
            "make", "-C", str(REPO), "cluster-up", "CLUSTER=existing",
            f"CONTAINERD={CONTAINERD_SOCK}", f"CTR={BIN / 'ctr'}",
            f"INVENTORY={inventory}", f"SSH_KEY={ssh_key}", f"KNOWN_HOSTS={known_hosts}",
            f"CLUSTER_EXTRA_VARS=-e @{extra}",
        ],
        env={**env_path(), "KUBECONFIG": str(KUBECONFIG)}, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip


def healthy() -> bool:
    if any(running(c) is None for c in COMPONENTS) or not KUBECONFIG.is_file():
        return False
    try:
        return https_ok(f"https://{NODE_IP}:{API_PORT}/readyz") and node_ready()
    except Exception:
        return False


def trainer_available() -> bool:
    res = kubectl(
        "get", "deployment", "-n", TRAINER_NAMESPACE, "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas} {end}", check=False,
    )  # fmt: skip
    names = dict(item.split("=", 1) for item in res.stdout.split())
    return all(
        names.get(d) == "1" for d in ("kubeflow-trainer-controller-manager", "jobset-controller-manager")
    )


def up(skip_trainer: bool = False) -> None:
    if os.geteuid() != 0:
        raise KubeError("the test cluster needs root (kubelet, containerd, network devices)")
    started = time.monotonic()
    if healthy():
        log("the cluster runs already")
    else:
        down(quiet=True)
        build()
        started = time.monotonic()
        make_pki()
        write_kubeconfig(KUBECONFIG, "admin")
        network()
        start_control_plane()
        start_node()
        log(f"node {NODE} Ready after {time.monotonic() - started:.0f} s")
    if not skip_trainer and not trainer_available():
        install_trainer()
        log(f"Kubeflow Trainer Available after {time.monotonic() - started:.0f} s")
    log(f"up: KUBECONFIG={KUBECONFIG}")


# --- down -------------------------------------------------------------------------------------------


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def our_processes() -> list[int]:
    """Every process whose executable is one of the cluster's binaries (shims and containers' children
    are found through containerd; this catches components whose pid file is gone)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if exe.startswith(str(BIN) + "/"):
            pids.append(int(entry.name))
    return pids


def stop_pods() -> None:
    """Let kubelet tear the pods down (CNI DEL: veths and IPs released) while it still runs."""
    if running("kubelet") is None or running("kube-apiserver") is None:
        return
    for name in ("kube-controller-manager", "kube-scheduler"):
        if pid := running(name):
            _kill(pid, signal.SIGTERM)
    kubectl(
        "delete",
        "pods",
        "--all",
        "-A",
        "--grace-period=0",
        "--force",
        "--wait=false",
        check=False,
        timeout=60,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not ctr("tasks", "ls", "-q", check=False).stdout.strip():
            return
        time.sleep(1)


def mounts_under(*roots: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(r) or point.startswith(str(r) + "/") for r in roots):
            found.append(point)
    return found


def down(quiet: bool = False) -> None:
    if not quiet:
        log("stopping the cluster")
    stop_pods()
    if running("containerd"):
        for task in ctr("tasks", "ls", "-q", check=False).stdout.split():
            ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        time.sleep(0.5)
        for task in ctr("tasks", "ls", "-q", check=False).stdout.split():
            ctr("tasks", "delete", "-f", task, check=False)
        for container in ctr("containers", "ls", "-q", check=False).stdout.split():
            ctr("containers", "delete", container, check=False)
    for name in reversed(COMPONENTS):
        if pid := running(name):
            _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and our_processes():
        time.sleep(0.2)
    for pid in our_processes():
        _kill(pid, signal.SIGKILL)
    # runc containers whose shim is gone: their processes live in cgroups named by containerd (k8s.io/...).
    for pid in container_processes():
        _kill(pid, signal.SIGKILL)
    if (BIN / "kube-proxy").exists():
        run(BIN / "kube-proxy", "--cleanup", check=False, timeout=60)
    remove_kube_rules()
    for point in sorted(mounts_under(DATA, RUN), key=len, reverse=True):
        run("umount", "-l", point, check=False)
    for veth in our_veths():
        run("ip", "link", "delete", veth, check=False)
    run("ip", "link", "delete", BRIDGE, check=False)
    remove_cgroups()
    for path in (DATA / "kubelet", DATA / "cni", DATA / "etcd", RUN):
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(STATE / "pids", ignore_errors=True)
    # containerd puts shim sockets and ctr's fifos in /run/containerd whatever its state dir: empty dirs only.
    for d in ("/run/containerd/s", "/run/containerd/fifo", "/run/containerd"):
        with contextlib.suppress(OSError):
            os.rmdir(d)
    if not quiet:
        left = leftovers()
        if left:
            raise KubeError("left on this machine: " + "; ".join(left))
        log("down: nothing of the cluster is left")


def kube_rules(family: str) -> str:
    """The KUBE-* chains and rules (kube-proxy's and kubelet's) of iptables or ip6tables."""
    if not shutil.which(f"{family}-save"):
        return ""
    return "".join(line + "\n" for line in run(f"{family}-save").stdout.splitlines() if "KUBE-" in line)


def remove_kube_rules() -> None:
    """Every KUBE-* chain and every rule naming one (kubelet's canaries and firewall survive kube-proxy
    --cleanup), restoring each table without them: the other rules (podman's) stay as they were."""
    for family in ("iptables", "ip6tables"):
        if not kube_rules(family):
            continue
        kept = [line for line in run(f"{family}-save").stdout.splitlines() if "KUBE-" not in line]
        run(f"{family}-restore", input="\n".join(kept) + "\n")


def container_processes() -> list[int]:
    pids = []
    for procs in Path("/sys/fs/cgroup/pids").glob("**/cgroup.procs"):
        rel = str(procs.parent.relative_to("/sys/fs/cgroup/pids"))
        if rel.startswith(("kubepods", "k8s.io", "rtkube")):
            pids += [int(p) for p in procs.read_text().split()]
    return pids


def remove_cgroups() -> None:
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for top in ("kubepods", "k8s.io"):
            root = hierarchy / top
            if not root.is_dir():
                continue
            for d in sorted(
                (p for p in root.glob("**/") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            ):
                with contextlib.suppress(OSError):
                    d.rmdir()


def our_veths() -> list[str]:
    res = run("ip", "-o", "link", "show", "master", BRIDGE, check=False)
    return [line.split(":")[1].strip().split("@")[0] for line in res.stdout.splitlines() if ":" in line]


def leftovers() -> list[str]:
    """What of the cluster is still on this machine: processes, mounts (network namespaces among them),
    network devices, kube-proxy's rules, cgroups."""
    left = []
    procs = our_processes() + container_processes()
    if procs:
        left.append(f"processes {sorted(procs)}")
    if mounts := mounts_under(DATA, RUN):
        left.append(f"mounts {mounts}")
    if run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        left.append(f"network device {BRIDGE}")
    for family in ("iptables", "ip6tables"):
        if kube_rules(family):
            left.append(f"{family} chains KUBE-*")
    cgroups = [
        str(p) for h in Path("/sys/fs/cgroup").iterdir() for p in (h / "kubepods", h / "k8s.io") if p.is_dir()
    ]
    if cgroups:
        left.append(f"cgroups {cgroups}")
    return left


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser(
        "up", help="build what is missing, start, wait until node Ready and Trainer Available"
    )
    p_up.add_argument("--no-trainer", action="store_true", help="do not install Kubeflow Trainer")
    sub.add_parser("down", help="stop everything; remove containers, mounts, network devices and rules")
    sub.add_parser("env", help="print KUBECONFIG and KUBE_BIN for a shell")
    sub.add_parser("leftovers", help="list what of the cluster is still on this machine (exit 1 if any)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "up":
            up(skip_trainer=args.no_trainer)
        elif args.cmd == "down":
            down()
        elif args.cmd == "env":
            print(f"KUBECONFIG={KUBECONFIG}\nKUBE_BIN={BIN}")
        elif args.cmd == "leftovers":
            left = leftovers()
            for item in left:
                print(item)
            return 1 if left else 0
    except KubeError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
