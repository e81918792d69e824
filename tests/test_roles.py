"""Every role's interface: defaults/main.yml and meta/argument_specs.yml declare the same variables."""

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[1] / "roles"


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir() if p.is_dir()))
def test_defaults_and_argument_specs_agree(role):
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = {name: spec for entry in specs.values() for name, spec in entry["options"].items()}
    assert set(defaults) == set(options)
    for name in defaults:
        assert name.startswith(role + "_"), f"{name} lacks the role prefix"
        assert options[name].get("description"), f"{name} has no description"
