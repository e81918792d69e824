"""Why a multi-node job cannot start on its ranks (plugins/plugin_utils/preflight.py)."""

from __future__ import annotations

from ansible_collections.remote_trainer.core.plugins.plugin_utils.preflight import preflight_errors

RANKS = ["h0", "h1", "h2"]


def ready(cuda: str | None = "12.1", torch: str | None = "2.5.1") -> dict:
    return {"rank": 0, "versions": {"python": "3.11.9", "torch": torch, "cuda": cuda}, "error": None}


def test_every_rank_ready_with_the_same_versions():
    assert preflight_errors(RANKS, [ready(), ready(), ready()], RANKS) == []


def test_a_rank_that_left_the_play_failed_before_the_preflight():
    # h1 failed in provisioning: out of the play, and it never set its probe.
    assert preflight_errors(RANKS, [ready(), {}, ready()], ["h0", "h2"]) == [
        "h1 (rank 1) failed before the preflight"
    ]
    assert preflight_errors(RANKS, [ready(), ready(), None], RANKS) == [
        "h2 (rank 2) failed before the preflight"
    ]


def test_a_rank_whose_preflight_failed():
    failed = {**ready(), "error": "cannot reach MASTER_ADDR:MASTER_PORT 10.0.0.1:29500 (timed out)"}
    assert preflight_errors(RANKS, [ready(), failed, ready(cuda=None)], RANKS) == [
        "h1 (rank 1): cannot reach MASTER_ADDR:MASTER_PORT 10.0.0.1:29500 (timed out)"
    ]


def test_every_failed_rank_is_named_in_rank_order():
    no_answer = {"error": "no answer: python3: not found", "versions": {}}
    assert preflight_errors(RANKS, [no_answer, ready(), {}], ["h0", "h1"]) == [
        "h0 (rank 0): no answer: python3: not found",
        "h2 (rank 2) failed before the preflight",
    ]


def test_versions_that_differ_are_listed_for_every_rank():
    assert preflight_errors(RANKS, [ready(), ready(cuda=None), ready()], RANKS) == [
        "versions differ between ranks: h0 cuda=12.1,python=3.11.9,torch=2.5.1; "
        "h1 cuda=None,python=3.11.9,torch=2.5.1; h2 cuda=12.1,python=3.11.9,torch=2.5.1"
    ]


def test_versions_are_compared_ignoring_case_as_before():
    assert (
        preflight_errors(["a", "b"], [ready(torch="2.5.1+CU121"), ready(torch="2.5.1+cu121")], ["a", "b"])
        == []
    )


def test_only_the_ranks_count():
    # A single-node job: the other hosts of the play are not ranks.
    assert preflight_errors(["h0"], [ready()], ["h0", "h1"]) == []
