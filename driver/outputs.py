"""Bring a job's outputs back while it runs (periodic sync); at its end the playbooks do it themselves."""

from __future__ import annotations

from driver import control, jobs


def sync_running(record: jobs.JobRecord) -> None:
    """rsync each host's outputs into record.output_dir/<host>/ now, whatever the job's state."""
    if record.output_dir and record.running:
        control.run_control(record, "status", extra={"training_job_sync": True})
