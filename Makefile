# remote-trainer developer entry points. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
HOSTS_STATE ?= .state/testhosts
HOSTS ?= 2
# Small real packages that the provisioning tests serve to hosts from a local wheelhouse.
TEST_WHEELS := six==1.16.0 iniconfig==2.0.0
WHEELHOUSE := .state/wheelhouse
# PyTorch's CPU build and its dependencies, for the multi-node test's hosts (offline).
TORCH_WHEELHOUSE := .state/torch-wheelhouse
SHELL_SCRIPTS := .ci/run .ci/setup-podman.sh runner/python runner/remote-trainer-runner \
	$(wildcard testhosts/*.sh testhosts/image/*.sh tests/gpu/*.sh)

.PHONY: help install lint test test-gpu molecule bench cluster-up cluster-down image hosts-up hosts-down images wheelhouse clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/driver: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/driver  ## Create .venv with the driver, Ansible and the dev tools.

lint: install  ## ruff, yamllint, shellcheck and ansible-lint (production profile).
	$(BIN)/ruff check driver tests testhosts bench roles
	$(BIN)/ruff format --check driver tests testhosts bench roles
	$(BIN)/yamllint --strict .
	$(BIN)/shellcheck $(SHELL_SCRIPTS)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --strict

wheelhouse: install  ## Download the test wheels (the tests' hosts install from them, offline).
	$(BIN)/pip download -q --no-deps --only-binary=:all: -d $(WHEELHOUSE) $(TEST_WHEELS)
	bash testhosts/torch-wheelhouse.sh $(TORCH_WHEELHOUSE)

test: lint wheelhouse  ## The whole suite: lint, pytest and every molecule scenario, against real hosts (see .ci/run).
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m pytest
	$(MAKE) molecule

# Scenarios that run on this kind of machine; minikube and kubeflow_trainer need a Docker engine and run
# in the cluster workflow (.github/workflows/cluster.yml).
SCENARIOS ?= remote_host training_job runner_image remote_runtime

molecule: install images wheelhouse  ## molecule test for every scenario that runs here (SCENARIOS=...).
	for s in $(SCENARIOS); do PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s $$s || exit 1; done

# The user's inventory, key and known_hosts for the `remote` runtime (never written into the repository).
INVENTORY ?= $(HOME)/.config/remote-trainer/hosts.ini
SSH_KEY ?= $(HOME)/.ssh/id_ed25519
KNOWN_HOSTS ?= $(HOME)/.ssh/known_hosts
CLUSTER_VARS = -e @minikube/profile.yml -e remote_runtime_inventory=$(INVENTORY) \
	-e remote_runtime_ssh_key=$(SSH_KEY) -e remote_runtime_known_hosts=$(KNOWN_HOSTS)
PLAYBOOK = ANSIBLE_CONFIG=$(CURDIR)/ansible.cfg PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-playbook -i localhost,

cluster-up: install  ## minikube + runner image + Kubeflow Trainer + the remote runtime (INVENTORY, SSH_KEY, KNOWN_HOSTS).
	$(PLAYBOOK) playbooks/cluster.yml $(CLUSTER_VARS)

cluster-down: install  ## Delete the minikube profile.
	$(PLAYBOOK) playbooks/cluster.yml $(CLUSTER_VARS) -e minikube_state=absent

image: install  ## Build the runner image (tagged by content).
	$(PLAYBOOK) playbooks/image.yml

images:  ## Build the sshd test host images (once; skipped when current).
	bash testhosts/build-image.sh

hosts-up: install images  ## Start $(HOSTS) sshd test hosts; inventory in $(HOSTS_STATE)/inventory.ini.
	$(PY) testhosts/hosts.py up $(HOSTS) $(HOSTS_STATE)

hosts-down:  ## Remove the test hosts started by hosts-up.
	$(PY) testhosts/hosts.py down $(HOSTS_STATE)

test-gpu: install  ## On a machine with an NVIDIA GPU: CUDA training, torchrun/NCCL, stops free the GPU (tests/gpu).
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m pytest -m gpu tests/gpu -rA
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/gpu_overhead.py

bench: install images wheelhouse  ## Benchmarks against test hosts: launch overhead, relay latency, provisioning.
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/launch_overhead.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/provision.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) bench/fanout.py

clean:  ## Remove the venv and local state of the dev tools.
	rm -rf $(VENV) .state .pytest_cache .ruff_cache
