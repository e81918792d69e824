"""The job contract: the dict the driver sends validates against the role's argument_specs, defaults come
from that one file, and a job without its required fields is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.remote_trainer.core.plugins.plugin_utils.job_options import training_job_contract
from driver.job import contract
from driver.job.spec import JobSpec

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "ansible_collections" / "remote_trainer" / "core" / "roles" / "training_job"

SPECS = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def test_the_train_job_dict_holds_only_what_is_set_and_validates(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("print(1)\n")
    spec = JobSpec(script=script, args=["--secret-arg"], env={"TOKEN": "s3cret"})
    job = contract.train_job(
        spec,
        spec_file=tmp_path / "spec.json",
        cancel_file=tmp_path / "cancel",
        output_dir=tmp_path,
        stage=None,
    )
    assert set(job) == {"id", "script", "spec_file", "cancel_file", "created", "output_dir"}
    assert "s3cret" not in repr(job) and "--secret-arg" not in repr(job)
    result = ArgumentSpecValidator(SPECS["main"]["options"]["training_job"]["options"]).validate(dict(job))
    assert not result.error_messages
    assert result.validated_parameters["grace"] == contract.default("grace") == 10


def test_grace_zero_is_kept(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("")
    spec = JobSpec(script=script, grace=0.0, timeout=5.0, nodes=2, launcher="torchrun", nproc_per_node="gpu")
    job = contract.train_job(
        spec, spec_file=tmp_path / "x", cancel_file=tmp_path / "c", output_dir=tmp_path, stage=None
    )
    full = training_job_contract(job)
    assert full["grace"] == 0.0 and full["timeout"] == 5.0
    assert full["nodes"] == "2" and full["nproc_per_node"] == "gpu" and full["launcher"] == "torchrun"


def test_the_filter_fills_in_every_default_of_the_specs():
    full = training_job_contract({"id": "j1", "script": "/s.py"})
    options = SPECS["main"]["options"]["training_job"]["options"]
    assert set(full) == set(options)
    for name, option in options.items():
        if "default" in option:
            assert full[name] == option["default"] or float(full[name]) == float(option["default"]), name
    control = training_job_contract({"id": "j1"}, "control")
    assert control["grace"] == full["grace"] and control["control"] == "follow"


@pytest.mark.parametrize(
    ("job", "entry"), [({"script": "/s.py"}, "main"), ({"id": "j"}, "main"), ({}, "control")]
)
def test_a_job_without_its_required_fields_is_refused(job, entry):
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="missing required"):
        training_job_contract(job, entry)


def test_required_fields_have_no_default():
    for entry in SPECS.values():
        for name, option in entry["options"].items():
            assert not (option.get("required") and "default" in option), name
            for sub, suboption in (option.get("options") or {}).items():
                assert not (suboption.get("required") and "default" in suboption), f"{name}.{sub}"
