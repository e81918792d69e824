"""Ansible execution: run our playbooks through ansible-runner; their events become outcomes and output."""
