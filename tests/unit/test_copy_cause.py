"""Why a copy failed (plugins/plugin_utils/copy_cause.py): training_job's staging and outputs."""

from __future__ import annotations

from ansible_collections.remote_trainer.core.plugins.plugin_utils.copy_cause import copy_cause


def test_rsyncs_own_line_is_preferred():
    result = {
        "rc": 23,
        "stderr": "sending incremental file list\n"
        '  rsync: [receiver] mkstemp "/data/.x.abc" failed: No space left on device (28)  \n'
        "rsync error: some files/attrs were not transferred (code 23)\n",
        "msg": "Warning: Permanently added 'host' (ED25519) to the list of known hosts.\r\nrsync: later line",
    }
    assert (
        copy_cause(result) == 'rsync: [receiver] mkstemp "/data/.x.abc" failed: No space left on device (28)'
    )


def test_a_missing_program_is_found_in_the_message_too():
    result = {"msg": "Failed to find required executable\nbash: line 1: Rsync: command not found"}
    assert copy_cause(result) == "bash: line 1: Rsync: command not found"


def test_otherwise_the_first_line_of_stderr_then_msg():
    assert copy_cause({"stderr": "\n  Permission denied (publickey).\n", "msg": "ssh failed"}) == (
        "Permission denied (publickey)."
    )
    assert copy_cause({"msg": "  Source /w/out/ not found  "}) == "Source /w/out/ not found"
    assert copy_cause({"failed": True, "msg": "Destination directory /o/h0 does not exist"}) == (
        "Destination directory /o/h0 does not exist"
    )


def test_no_lines_at_all():
    assert copy_cause({}) == "no message"
    assert copy_cause({"stderr": " \n\t\n", "msg": ""}) == "no message"
