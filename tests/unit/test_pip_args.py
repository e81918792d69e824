"""pip's arguments and environment for remote_host's requirements (plugins/plugin_utils/pip_args.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ansible_collections.remote_trainer.core.plugins.plugin_utils.pip_args import pip_args, pip_env

VENVSET = (
    Path(__file__).resolve().parents[2]
    / "ansible_collections/remote_trainer/core/roles/remote_host/files/venvset.py"
)
PLAN = {"cache": "/home/u/.cache/remote-trainer", "in_image": False, "externally_managed": False}


def load_venvset():
    """The host-side script, imported as a module (it runs nothing on import)."""
    spec = importlib.util.spec_from_file_location("venvset", VENVSET)
    assert spec and spec.loader
    venvset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(venvset)
    return venvset


def plan(**changes: object) -> dict:
    return {**PLAN, **changes}


def test_the_defaults_give_no_arguments():
    assert pip_args(plan()) == []


def test_index_urls_and_find_links_urls_stay_out_of_the_arguments():
    """They may hold credentials (https://user:token@...): a command line is readable by every user."""
    assert pip_args(
        plan(),
        index_url="https://u:t@pypi.example/simple",
        extra_index_urls=["https://a.example/simple", "https://b.example/simple"],
        find_links=["/srv/wheels", "https://u:t@c.example/links"],
    ) == ["--find-links", "/srv/wheels"]


def test_index_urls_and_find_links_urls_go_in_pips_environment():
    assert pip_env(
        "https://u:t@pypi.example/simple",
        extra_index_urls=["https://a.example/simple", "https://b.example/simple"],
        find_links=["/srv/wheels", "https://u:t@c.example/links"],
    ) == {
        "PIP_INDEX_URL": "https://u:t@pypi.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://a.example/simple https://b.example/simple",
        "PIP_FIND_LINKS": "https://u:t@c.example/links",
    }
    assert pip_env("") == {}


def test_the_wheelhouse_is_its_copy_in_the_hosts_cache_after_the_find_links():
    assert pip_args(plan(), find_links=["/srv/wheels"], wheelhouse="./local/wheels", no_index=True) == [
        "--find-links",
        "/srv/wheels",
        "--find-links",
        "/home/u/.cache/remote-trainer/wheelhouse",
        "--no-index",
    ]


def test_no_index():
    assert pip_args(plan(), no_index=True) == ["--no-index"]


def test_the_system_interpreter_installs_for_the_user():
    assert pip_args(plan(), interpreter="system") == ["--user"]


def test_an_externally_managed_system_python_is_told_so():
    assert pip_args(plan(externally_managed=True), interpreter="system") == [
        "--user",
        "--break-system-packages",
    ]


def test_a_venv_needs_neither_user_nor_break_system_packages():
    assert pip_args(plan(externally_managed=True), interpreter="virtualenv") == []


def test_in_an_image_the_system_interpreter_installs_into_the_target():
    assert pip_args(plan(in_image=True, externally_managed=True), interpreter="system") == []


def test_the_extra_arguments_come_last_in_their_order():
    assert pip_args(
        plan(externally_managed=True),
        find_links=["/srv/wheels"],
        no_index=False,
        interpreter="system",
        extra_args=["--pre", "--timeout", "60"],
    ) == [
        "--find-links",
        "/srv/wheels",
        "--user",
        "--break-system-packages",
        "--pre",
        "--timeout",
        "60",
    ]


def test_on_the_host_the_specs_index_urls_win_and_lists_add_up():
    """venvset.py's pip_environment: the host's, then the inventory's, then the spec's pip variables."""
    venvset = load_venvset()
    merged = venvset.pip_environment(
        {"HOME": "/h", "PIP_INDEX_URL": "https://host/simple"},
        {"HTTPS_PROXY": "http://p:3128", "PIP_FIND_LINKS": "/srv/wheels"},
        {"PIP_INDEX_URL": "https://u:t@idx/simple", "PIP_FIND_LINKS": "https://u:t@links/"},
    )
    assert merged == {
        "HOME": "/h",
        "HTTPS_PROXY": "http://p:3128",
        "PIP_INDEX_URL": "https://u:t@idx/simple",
        "PIP_FIND_LINKS": "/srv/wheels https://u:t@links/",
    }


def test_the_cache_listing_masks_a_urls_credentials():
    """venvset.py list: a requirement line with https://user:token@ shows no token (the user, as pip does)."""
    venvset = load_venvset()
    line = "pkg @ git+https://user:tok3n@git.example/p.git --index-url https://tok3n@idx.example/simple"
    assert venvset.without_credentials(line) == (
        "pkg @ git+https://user:****@git.example/p.git --index-url https://****@idx.example/simple"
    )
    assert venvset.without_credentials("torch==2.13.0") == "torch==2.13.0"
    assert venvset.without_credentials("pkg @ file:///srv/p.whl") == "pkg @ file:///srv/p.whl"
