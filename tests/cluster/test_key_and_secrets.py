"""The runtime's secrets against a TrainJob's own command, as an attacker who may create TrainJobs in a
runtime namespace would try (issue 28): the SSH key is in no file, variable or process that the TrainJob's
command can reach, and no TrainJob can ask for it; the pod passes Pod Security "restricted"; `driver submit
-e` values live in a Secret owned by the TrainJob and in no spec; `driver cluster status` reads no Secret's
value."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import ssl
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import ClassVar

import cluster as kubecluster
import pytest
import yaml
from conftest import REPO, driver, kubectl, wait

pytestmark = pytest.mark.cluster

SCRIPTS = REPO / "tests" / "scripts"
LABEL = "jobset.sigs.k8s.io/jobset-name"
SSH_SECRET = "remote-trainer-ssh"

# What the TrainJob's command tries, in its own container: every file of its file system with a private key in
# it, the environment and command line of every process it sees, its own environment, and the agent (which
# lists public keys only). It prints the sha256 of every base64-looking line it found (the key's lines are
# among them if it got the key), the files outside the image's own (/opt, /usr) and the processes it sees.
HUNT = r"""
import hashlib, os, re, subprocess

def hashes(data):
    for line in data.replace(b"\0", b"\n").splitlines():
        line = line.strip()
        if re.fullmatch(rb"[A-Za-z0-9+/=]{40,}", line):
            yield hashlib.sha256(line).hexdigest()

found, files = set(), []
for root, dirs, names in os.walk("/"):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for name in names:
        path = os.path.join(root, name)
        try:
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 10 << 20:
                continue
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if b"PRIVATE KEY-----" in data:
            files.append(path)
            found.update(hashes(data))
seen = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    for what in ("environ", "cmdline"):
        try:
            with open(f"/proc/{pid}/{what}", "rb") as f:
                data = f.read()
        except OSError:
            continue
        found.update(hashes(data))
        if what == "cmdline":
            seen.append(data.replace(b"\0", b" ").decode(errors="replace")[:60])
found.update(hashes("\n".join(f"{k}={v}" for k, v in os.environ.items()).encode()))
agent = subprocess.run(["ssh-add", "-L"], capture_output=True, text=True)
print("FILES", [f for f in files if not f.startswith(("/opt/", "/usr/"))])
print("PROCESSES", seen)
print("AGENT", agent.returncode, agent.stdout.split()[:1])
for h in sorted(found):
    print("H", h)
print("HUNT-END", flush=True)
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def restricted(kube, installed, pod_files):
    """A runtime namespace that enforces Pod Security "restricted", with the runtime's two Secrets."""
    ns = unique("restricted")
    kubectl(kube, "create", "namespace", ns)
    kubectl(kube, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    try:
        kubectl(
            kube, "-n", ns, "create", "secret", "generic", "remote-trainer-ssh",
            f"--from-file=id_ed25519={pod_files / 'id_ed25519'}",
            f"--from-file=known_hosts={pod_files / 'known_hosts'}",
        )  # fmt: skip
        kubectl(
            kube, "-n", ns, "create", "secret", "generic", "remote-trainer-inventory",
            f"--from-file=hosts.ini={pod_files / 'hosts.ini'}",
        )  # fmt: skip
        yield ns
    finally:
        kubectl(kube, "delete", "namespace", ns, "--wait=false", check=False)


def key_lines(pod_files: Path) -> list[str]:
    """The key's base64 lines: any one of them in a log is a leak."""
    lines = (pod_files / "id_ed25519").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("-----")]


def key_hashes(pod_files: Path) -> set[str]:
    return {hashlib.sha256(line.encode()).hexdigest() for line in key_lines(pod_files)}


def apply_trainjob(kube, ns: str, name: str, trainer: dict, extra: dict | None = None):
    job = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"runtimeRef": {"name": "remote"}, "trainer": trainer, **(extra or {})},
    }
    return subprocess.run(
        ["kubectl", "create", "-f", "-"], input=json.dumps(job), env=kube, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def pod_log(kube, ns: str, name: str) -> str:
    return kubectl(kube, "-n", ns, "logs", "-l", f"{LABEL}={name}", "-c", "node", "--tail=-1", check=False)


def test_a_trainjob_command_that_hunts_for_the_key_gets_nothing(kube, restricted, pod_files):
    name = unique("hunt")
    res = apply_trainjob(kube, restricted, name, {"command": ["/usr/bin/python3", "-c", HUNT]})
    assert res.returncode == 0, res.stderr
    log = wait(
        "the hunt to end", lambda: (text := pod_log(kube, restricted, name)) and "HUNT-END" in text and text
    )
    found = {line.split()[1] for line in log.splitlines() if line.startswith("H ")}
    assert found and not found & key_hashes(pod_files), "the TrainJob's command read the SSH key"
    assert "FILES []" in log.splitlines(), log[:3000]  # no file with a private key beside the image's own
    # It sees its own processes only, not the sidecar's agent; the agent answers with a public key alone
    # (the command can use the key through it while the pod runs: README, "Who can use the key").
    (processes,) = [line for line in log.splitlines() if line.startswith("PROCESSES ")]
    assert "ssh-agent" not in processes, processes
    assert "AGENT 0 ['ssh-ed25519']" in log.splitlines()
    kubectl(kube, "-n", restricted, "delete", "trainjob", name, "--wait=false", check=False)


def test_a_trainjob_runs_on_the_host_in_a_namespace_that_enforces_restricted(kube, restricted):
    """The runner pod passes Pod Security "restricted" and reaches the host through the agent."""
    name = unique("restricted")
    res = driver(
        kube, "submit", "-f", "-n", restricted, str(SCRIPTS / "echo_args.py"), "--name", name, "--", name,
        timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["args"] == [name]


@pytest.mark.parametrize(
    "what, trainer, extra",
    [
        (
            "runtimePatches",
            {"command": ["sh", "-c", "cat /key/id_ed25519"]},
            {
                "runtimePatches": [
                    {
                        "manager": "example.com/attacker",
                        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
                            "name": "node",
                            "template": {"spec": {"template": {"spec": {"containers": [{
                                "name": "node", "volumeMounts": [{"name": "key", "mountPath": "/key"}],
                            }]}}}},
                        }]}}},
                    }
                ]
            },
        ),
        (
            "remote-trainer-ssh",
            {
                "command": ["sh", "-c", "echo \"$K\""],
                "env": [
                    {"name": "K", "valueFrom": {"secretKeyRef": {"name": SSH_SECRET, "key": "id_ed25519"}}}
                ],
            },
            None,
        ),
    ],
    ids=["runtime-patch-mounts-the-key", "env-from-the-key"],
)  # fmt: skip
def test_trainjobs_that_ask_for_the_key_are_refused(kube, restricted, pod_files, what, trainer, extra):
    name = unique("ask")
    res = apply_trainjob(kube, restricted, name, trainer, extra)
    try:
        assert res.returncode != 0, "the API server accepted a TrainJob that asks for the key"
        assert "remote-trainer-runtime" in res.stderr and what in res.stderr, res.stderr
    finally:
        if res.returncode == 0:
            time.sleep(20)
            log = pod_log(kube, restricted, name)
            kubectl(kube, "-n", restricted, "delete", "trainjob", name, "--wait=false", check=False)
            assert not [line for line in key_lines(pod_files) if line in log], "and its command read the key"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_submit_env_values_are_in_a_secret_owned_by_the_trainjob_and_in_no_spec(kube, installed, tmp_path):
    name = unique("envsec")
    given, local = "sk-given-" + uuid.uuid4().hex, "tok-local-" + uuid.uuid4().hex
    script = tmp_path / "hashes.py"
    script.write_text(
        "import hashlib, os\n"
        "for k in ('API_KEY', 'TOKEN'):\n"
        "    print(k, hashlib.sha256(os.environ[k].encode()).hexdigest(), flush=True)\n"
        "import time; time.sleep(5)\n"
    )
    env = {**kube, "TOKEN": local}
    res = subprocess.run(
        [str(REPO / ".venv" / "bin" / "driver"), "submit", "-f", str(script), "--name", name,
         "-e", f"API_KEY={given}", "-e", "TOKEN"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.split("\n")[:2] == [f"API_KEY {sha(given)}", f"TOKEN {sha(local)}"]
        specs = [
            kubectl(kube, "get", "trainjob", name, "-o", "json"),
            kubectl(kube, "get", "jobset", name, "-o", "json"),
            kubectl(kube, "get", "pods", "-l", f"{LABEL}={name}", "-o", "json"),
        ]
        for spec in specs:
            assert given not in spec and local not in spec
        assert '"secretKeyRef"' in specs[1] and f"{name}-env" in specs[2]
        secret = json.loads(kubectl(kube, "get", "secret", f"{name}-env", "-o", "json"))
        trainjob = json.loads(specs[0])
        (owner,) = secret["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("TrainJob", name, trainjob["metadata"]["uid"])
    finally:
        kubectl(
            kube, "delete", "trainjob", name, "--ignore-not-found", "--wait=true", check=False, timeout=180
        )
    # The garbage collector takes the Secret with its TrainJob.
    wait(
        "the Secret to go with its TrainJob",
        lambda: (
            kubectl(kube, "get", "secret", f"{name}-env", "--ignore-not-found", "-o", "name").strip() == ""
        ),
        timeout=120,
    )


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Forwards GETs to the API server with the admin's certificate and keeps every answer's body."""

    seen: ClassVar[list[tuple[str, bytes]]] = []

    def do_GET(self) -> None:
        pki = kubecluster.STATE / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "user-agent")}
        request = urllib.request.Request(
            f"https://{kubecluster.NODE_IP}:{kubecluster.API_PORT}{self.path}", headers=headers
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                status, body, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, body, kind = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        self.seen.append((self.path, body))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_cluster_status_reads_no_secret_value(kube, installed, pod_files, tmp_path):
    """Every answer the API server gave `driver cluster status` (recorded on the way): no Secret data."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "rec",
                    "clusters": [
                        {"name": "rec", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
                    ],
                    "users": [{"name": "rec", "user": {}}],
                    "contexts": [{"name": "rec", "context": {"cluster": "rec", "user": "rec"}}],
                }
            )
        )
        res = driver({**kube, "KUBECONFIG": str(kubeconfig)}, "cluster", "status")
    finally:
        server.shutdown()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok       secret default/remote-trainer-ssh: present" in res.stdout
    assert "ok       secret default/remote-trainer-inventory: present" in res.stdout
    secrets = [(path, body) for path, body in _Recorder.seen if "/secrets/" in path]
    assert len(secrets) == 2, [path for path, _ in _Recorder.seen]
    for path, body in secrets:
        document = json.loads(body)
        assert document["kind"] == "PartialObjectMetadata" and "data" not in document, path
    everything = b"".join(body for _, body in _Recorder.seen).decode()
    key_b64 = base64.b64encode((pod_files / "id_ed25519").read_bytes()).decode()
    assert key_b64[:40] not in everything
