"""Bring a job's outputs back while it runs (periodic sync); at its end the playbooks do it themselves."""

from __future__ import annotations

import logging

from driver.job import store as jobs
from driver.ops import control

log = logging.getLogger("driver.ops.outputs")


def sync_running(record: jobs.JobRecord) -> None:
    """rsync each host's outputs into record.output_dir/<host>/ now, whatever the job's state."""
    if record.output_dir and record.running:
        play = control.run_control(record, "status", fields={"sync": True})
        for error in play.copy_errors:
            log.warning("%s (the job goes on; the final copy follows at its end)", error.message)
