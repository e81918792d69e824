"""What is wrong with an inventory, read by Ansible's own file plugins once a run has failed."""

from __future__ import annotations

from driver.errors import BadInventory
from driver.job.spec import inventory_problem


def test_a_good_inventory_and_sources_only_a_run_can_judge(tmp_path):
    good = tmp_path / "good.ini"
    good.write_text("[g]\ngpu1 ansible_host=10.0.0.5 ansible_port=2222\n")
    assert inventory_problem(str(good)) is None
    assert inventory_problem("h1,h2,") is None
    assert inventory_problem(str(tmp_path)) is None
    assert inventory_problem(None) is None


def test_no_hosts_a_port_that_is_no_number_and_a_syntax_error(tmp_path):
    empty, port, yaml_port, broken = (tmp_path / n for n in ("empty.ini", "port.ini", "p.yml", "broken.ini"))
    empty.write_text("[gpus]\n")
    port.write_text("[g]\ngpu1 ansible_port=notaport\n")
    yaml_port.write_text("all:\n  hosts:\n    gpu2:\n      ansible_port: 99999\n")
    broken.write_text("[gpus\nhost1 ansible_port=twenty=two\n")
    problems = {p.name: inventory_problem(str(p)) for p in (empty, port, yaml_port, broken)}
    assert all(isinstance(e, BadInventory) and e.hint for e in problems.values()), problems
    assert "has no hosts" in problems["empty.ini"].message
    assert "host gpu1 has ansible_port='notaport'" in problems["port.ini"].message
    assert "host gpu2 has ansible_port=99999" in problems["p.yml"].message
    assert "could not be parsed" in problems["broken.ini"].message
