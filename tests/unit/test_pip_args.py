"""pip's arguments for remote_host's requirements (plugins/plugin_utils/pip_args.py)."""

from __future__ import annotations

from ansible_collections.remote_trainer.core.plugins.plugin_utils.pip_args import pip_args

PLAN = {"cache": "/home/u/.cache/remote-trainer", "in_image": False, "externally_managed": False}


def plan(**changes: object) -> dict:
    return {**PLAN, **changes}


def test_the_defaults_give_no_arguments():
    assert pip_args(plan()) == []


def test_index_url_then_extra_urls_then_find_links():
    assert pip_args(
        plan(),
        index_url="https://pypi.example/simple",
        extra_index_urls=["https://a.example/simple", "https://b.example/simple"],
        find_links=["/srv/wheels", "https://c.example/links"],
    ) == [
        "--index-url",
        "https://pypi.example/simple",
        "--extra-index-url",
        "https://a.example/simple",
        "--extra-index-url",
        "https://b.example/simple",
        "--find-links",
        "/srv/wheels",
        "--find-links",
        "https://c.example/links",
    ]


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
        index_url="https://pypi.example/simple",
        no_index=False,
        interpreter="system",
        extra_args=["--pre", "--timeout", "60"],
    ) == [
        "--index-url",
        "https://pypi.example/simple",
        "--user",
        "--break-system-packages",
        "--pre",
        "--timeout",
        "60",
    ]
