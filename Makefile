# remote-trainer developer entry points. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
HOSTS_STATE ?= .state/testhosts
HOSTS ?= 2
# Small real packages that the provisioning tests serve to hosts from a local wheelhouse.
TEST_WHEELS := six==1.16.0 iniconfig==2.0.0
WHEELHOUSE := .state/wheelhouse
# PyTorch (the CPU build where pip has one, else PyPI's CUDA build) and its dependencies, for the
# multi-node tests' hosts (offline); outside the clone, keyed by version, so a fresh clone reuses it.
CACHE ?= $(HOME)/.cache/remote-trainer
TORCH_VERSION ?= 2.13.0
export TORCH_WHEELHOUSE ?= $(CACHE)/torch-wheelhouse/torch-$(TORCH_VERSION)-cp311
# torch's dependencies, pinned as constraints.txt pins the dev tree (`make lock` refreshes both).
TORCH_CONSTRAINTS := testhosts/torch-constraints.txt
# The Ansible collection remote_trainer.core: roles, plugins, playbooks (galaxy.yml).
COLLECTION := ansible_collections/remote_trainer/core
SHELL_SCRIPTS := .ci/run .ci/apt-install.sh .ci/setup-podman.sh .ci/setup-kube.sh runner/python runner/remote-trainer-runner \
	$(wildcard testhosts/*.sh testhosts/image/*.sh testhosts/kube/*.sh tests/gpu/*.sh)

# The test cluster's binaries (kubectl among them: the tests' kubectl, none needs to be installed).
KUBE_BIN := $(shell sh -c '. ./testhosts/kube/versions.sh && echo "$$KUBE_BIN"')
TEST_PATH = $(KUBE_BIN):$(CURDIR)/$(BIN):$$PATH

.PHONY: help install lock lint sanity collection image-push test test-cluster test-gpu molecule bench bench-cluster cluster-up cluster-down image hosts-up hosts-down images wheelhouse clean modules kube-build kube-up kube-down

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# Every package of the dev venv (and of the runner image) pinned, for Linux and CPython 3.11 as CI runs them:
# installs do not drift with upstream releases. pyproject.toml's ranges stay what users of the package get.
# `make lock` refreshes it on purpose (the newest releases within those ranges) and tests the result.
LOCK := constraints.txt
LOCK_VENV := .state/lock-venv

$(BIN)/driver: pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(BIN)/pip install -q -c $(LOCK) --upgrade pip
	$(BIN)/pip install -q -c $(LOCK) -e '.[dev]'
	$(BIN)/pip check
	touch $@

install: $(BIN)/driver  ## Create .venv with the driver, Ansible and the dev tools (pinned by constraints.txt).

lock:  ## Refresh constraints.txt (and torch's, testhosts/torch-constraints.txt) to the newest releases in range, rebuild .venv, run make test.
	rm -rf $(LOCK_VENV)
	python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --upgrade pip
	$(LOCK_VENV)/bin/pip install -q -e '.[dev]'
	$(LOCK_VENV)/bin/pip check
	{ sed -n '/^#/p' $(LOCK); $(LOCK_VENV)/bin/pip freeze --all --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	TORCH_VERSION=$(TORCH_VERSION) sh testhosts/torch-wheelhouse.sh --lock $(TORCH_CONSTRAINTS)
	rm -rf $(LOCK_VENV) $(VENV)
	$(MAKE) install
	$(MAKE) test

lint: install  ## ruff, yamllint, shellcheck and ansible-lint (production profile).
	$(BIN)/ruff check driver tests testhosts bench ansible_collections
	$(BIN)/ruff format --check driver tests testhosts bench ansible_collections
	$(BIN)/yamllint --strict .
	$(BIN)/shellcheck $(SHELL_SCRIPTS)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --strict
	$(MAKE) sanity

# ansible-test makes a venv per sanity test; .ci/ansible-test-pip.py gives it the pip bootstrap it would download.
sanity: install  ## ansible-test sanity on the collection (its ignore file: $(COLLECTION)/tests/sanity/).
	$(PY) .ci/ansible-test-pip.py
	cd $(COLLECTION) && PATH=$(CURDIR)/$(BIN):$$PATH $(CURDIR)/$(BIN)/ansible-test sanity \
		--python $$($(CURDIR)/$(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')

collection: install  ## Build the collection's tarball into .state/collection/ (ansible-galaxy collection install it).
	$(BIN)/ansible-galaxy collection build $(COLLECTION) --output-path .state/collection --force

wheelhouse: install  ## Download the test wheels (the tests' hosts install from them, offline).
	$(BIN)/pip download -q --no-deps --only-binary=:all: -d $(WHEELHOUSE) $(TEST_WHEELS)
	TORCH_VERSION=$(TORCH_VERSION) TORCH_CONSTRAINTS=$(TORCH_CONSTRAINTS) sh testhosts/torch-wheelhouse.sh $(TORCH_WHEELHOUSE)

test: lint collection wheelhouse modules kube-build  ## The whole suite: lint, pytest, molecule, then the cluster tests (see .ci/run).
	PATH=$(TEST_PATH) $(PY) -m pytest
	$(MAKE) molecule
	$(MAKE) test-cluster

# Against the single-node cluster (root): cluster-up twice, cluster status, a TrainJob's pod, the molecule
# scenario kubeflow_trainer, then kube-down and a check that nothing of the cluster is left.
test-cluster: install images wheelhouse modules kube-build  ## The cluster tests against `make kube-up`'s cluster (root; ends with kube-down).
	$(KUBE) up
	PATH=$(TEST_PATH) $(PY) -m pytest -m cluster tests/cluster --deselect tests/cluster/test_zz_kube_down.py
	KUBECONFIG=$(CURDIR)/.state/kube/kubeconfig KUBEFLOW_TRAINER_MANIFESTS=$(CURDIR)/.state/kube/manifests/trainer/overlays/manager \
		PATH=$(TEST_PATH) $(BIN)/molecule test -s kubeflow_trainer
	PATH=$(TEST_PATH) $(PY) -m pytest -m cluster tests/cluster/test_zz_kube_down.py

# Scenarios that run on this kind of machine without a cluster; kubeflow_trainer runs in test-cluster against
# the single-node cluster, minikube (a Docker engine) in the cluster workflow (.github/workflows/cluster.yml).
SCENARIOS ?= default remote_host training_job runner_image remote_runtime

molecule: install images wheelhouse  ## molecule test for every scenario that runs here (SCENARIOS=...).
	for s in $(SCENARIOS); do PATH=$(TEST_PATH) $(BIN)/molecule test -s $$s || exit 1; done

# The user's inventory, key and known_hosts for the `remote` runtime (never written into the repository).
INVENTORY ?= $(HOME)/.config/remote-trainer/hosts.ini
SSH_KEY ?= $(HOME)/.ssh/id_ed25519
KNOWN_HOSTS ?= $(HOME)/.ssh/known_hosts
# CLUSTER=minikube (default: start minikube/profile.yml) or existing (the kubeconfig's current context, or
# CONTEXT=...; CONTAINERD=SOCKET imports the runner image into that node's containerd, CTR= names its ctr).
# IMAGE=REGISTRY/NAME:TAG pushes the runner image there instead (the engine's own login), and the runtime pulls
# it (OVERLAY=registry).
CLUSTER ?= minikube
CONTEXT ?=
CONTAINERD ?=
CTR ?= ctr
IMAGE ?=
OVERLAY ?= $(if $(IMAGE),registry,minikube)
CLUSTER_VARS = -e @minikube/profile.yml -e remote_runtime_inventory=$(INVENTORY) \
	-e remote_runtime_ssh_key=$(SSH_KEY) -e remote_runtime_known_hosts=$(KNOWN_HOSTS) \
	-e cluster_kind=$(CLUSTER) -e cluster_context=$(CONTEXT) -e remote_runtime_overlay=$(OVERLAY) \
	-e runner_image_containerd_address=$(CONTAINERD) -e runner_image_ctr=$(CTR) -e runner_image_context=$(CURDIR) \
	-e cluster_image=$(IMAGE) \
	$(CLUSTER_EXTRA_VARS)
PLAYBOOK = ANSIBLE_CONFIG=$(CURDIR)/ansible.cfg PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-playbook -i localhost,

cluster-up: install  ## Runner image + Kubeflow Trainer + the remote runtime on minikube or CLUSTER=existing (INVENTORY, SSH_KEY, KNOWN_HOSTS).
	$(PLAYBOOK) $(COLLECTION)/playbooks/cluster.yml $(CLUSTER_VARS)

cluster-down: install  ## Delete the minikube profile.
	$(PLAYBOOK) $(COLLECTION)/playbooks/cluster.yml $(CLUSTER_VARS) -e minikube_state=absent

image: install  ## Build the runner image (tagged by content).
	$(PLAYBOOK) $(COLLECTION)/playbooks/image.yml -e runner_image_context=$(CURDIR)

image-push: install  ## Build the runner image and push it to IMAGE=REGISTRY/NAME:TAG (then: make cluster-up CLUSTER=existing IMAGE=...).
	@test -n "$(IMAGE)" || { echo "make image-push: name the image in your registry: IMAGE=REGISTRY/NAME:TAG" >&2; exit 2; }
	$(PLAYBOOK) $(COLLECTION)/playbooks/image.yml -e runner_image_context=$(CURDIR) -e runner_image_push=$(IMAGE)

images:  ## Build the sshd test host images (once; skipped when current).
	bash testhosts/build-image.sh

hosts-up: install images  ## Start $(HOSTS) sshd test hosts; inventory in $(HOSTS_STATE)/inventory.ini.
	$(PY) testhosts/hosts.py up $(HOSTS) $(HOSTS_STATE)

hosts-down:  ## Remove the test hosts started by hosts-up.
	$(PY) testhosts/hosts.py down $(HOSTS_STATE)

test-gpu: install  ## On a machine with an NVIDIA GPU: CUDA training, torchrun/NCCL, stops free the GPU (tests/gpu).
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m pytest -m gpu tests/gpu -rA
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/gpu_overhead.py

bench: install images wheelhouse  ## Benchmarks: the relay on unbounded lines, then against test hosts: launch, relay, fan-out to 16 and 64 hosts, provisioning, Slurm.
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/relay_bounds.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/launch_overhead.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/provision.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/fanout.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/fanout64.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/slurm.py

bench-cluster: install images  ## The remote runtime on the test cluster against driver train: first line, log latency, delete.
	PATH=$(TEST_PATH) $(PY) bench/cluster_latency.py

clean:  ## Remove the venv and local state of the dev tools.
	rm -rf $(VENV) .state .pytest_cache .ruff_cache

# A single-node Kubernetes built from upstream Go modules (testhosts/kube): the cluster tests' API server,
# kubelet, Kubeflow Trainer and JobSet. Root only; binaries cached under ~/.cache/remote-trainer/kube.
KUBE = $(PY) testhosts/kube/cluster.py

modules:  ## Download the Go modules whose manifests the tests read (Kubeflow Trainer, JobSet).
	. testhosts/kube/versions.sh && go mod download github.com/kubeflow/trainer/v2@$$TRAINER_VERSION sigs.k8s.io/jobset@$$JOBSET_VERSION

kube-build:  ## Build the test cluster's binaries (Kubernetes, etcd, containerd, Trainer, JobSet) where missing.
	sh testhosts/kube/build.sh

kube-up: install images  ## Start the test cluster; waits for node Ready and Trainer Available; .state/kube/kubeconfig.
	$(KUBE) up

kube-down:  ## Stop the test cluster: no process, container, mount or network device of it is left.
	$(KUBE) down
