"""Typed errors of the driver and the one table of exit codes.

Every failure the user can cause or meet is a DriverError subclass carrying its exit code and a hint;
cli.py maps them to one stderr line plus a hint line. The codes are documented in README.md and in
`driver train --help` (HELP_EXIT_CODES below is the text of both).
"""

from __future__ import annotations

# Outcomes of the job itself.
EXIT_OK = 0
EXIT_TIMEOUT = 124
EXIT_DRIVER_FAILURE = 125
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
# Bad input and unusable hosts: one code each.
EXIT_USAGE = 2
EXIT_BAD_TIMEOUT = 64
EXIT_BAD_ENV = 65
EXIT_SCRIPT_MISSING = 66
EXIT_SCRIPT_IS_DIR = 67
EXIT_BAD_INVENTORY = 68
EXIT_NO_HOSTS = 69
EXIT_UNREACHABLE = 70
EXIT_AUTH_FAILED = 71
EXIT_HOST_KEY = 72
EXIT_NO_PYTHON = 73
EXIT_BAD_WORKDIR = 74
EXIT_REQUIREMENTS_FAILED = 75
EXIT_BAD_REQUIREMENTS = 76
EXIT_WORKDIR_TOO_BIG = 77
EXIT_NO_SUCH_JOB = 78
EXIT_LOST = 79
EXIT_BAD_NODES = 80
EXIT_PREFLIGHT = 81
EXIT_OUTPUTS_NOT_COPIED = 84

HELP_EXIT_CODES = """\
Exit codes:
  0        the script succeeded on every host
  1-123    the script's own exit code (the first non-zero one over the hosts)
  124      --timeout reached; the job was stopped on every host
  125      the driver failed in an unexpected way (see the message)
  127      the script could not be started on the host (e.g. --python not found)
  128+N    the script died from signal N (e.g. 137 = SIGKILL)
  130      interrupted (Ctrl+C); the job was stopped on every host
  143      the driver got SIGTERM; the job was stopped on every host
  2        invalid command line (unknown option, missing argument)
  64       invalid --timeout (or --grace, --sync-every, --older-than)
  65       invalid --env
  66       script not found or not readable
  67       script is a directory
  68       inventory missing or not parsable
  69       --limit (or the inventory) matches no host
  70       host unreachable (connection refused, unknown name, timeout)
  71       SSH authentication failed
  72       host key verification failed (unknown or changed key)
  73       no usable python on the host
  74       --workdir missing or not a directory
  75       requirements could not be installed on a host (pip or system packages)
  76       --requirements file or --wheelhouse missing
  77       the workdir is larger than --max-workdir-size
  78       no such job (driver status/logs/cancel), or its directory is gone from a host
  79       the job was lost: it no longer runs and left no exit code
  80       --nodes larger than the number of matched hosts, or invalid (or --nproc-per-node)
  81       multi-node preflight failed (rendezvous port unreachable, versions differ)
  82       driver submit: no kubeconfig, or the cluster is unreachable or refused the TrainJob
  83       driver cluster status: something is missing (Trainer, the runtime, its Secret or ConfigMap);
           driver submit --follow: the TrainJob's pod cannot start
  84       the script succeeded but its outputs could not be copied back (they stay on the host)"""


class DriverError(Exception):
    """An error with a message for the user, a hint on what to do, and the driver's exit code."""

    exit_code = EXIT_DRIVER_FAILURE

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class BadTimeout(DriverError):
    exit_code = EXIT_BAD_TIMEOUT


class BadEnv(DriverError):
    exit_code = EXIT_BAD_ENV


class ScriptMissing(DriverError):
    exit_code = EXIT_SCRIPT_MISSING


class ScriptIsDirectory(DriverError):
    exit_code = EXIT_SCRIPT_IS_DIR


class BadWorkdir(DriverError):
    exit_code = EXIT_BAD_WORKDIR


class BadInventory(DriverError):
    exit_code = EXIT_BAD_INVENTORY


class NoHostsMatched(DriverError):
    exit_code = EXIT_NO_HOSTS


class HostUnreachable(DriverError):
    exit_code = EXIT_UNREACHABLE


class AuthenticationFailed(DriverError):
    exit_code = EXIT_AUTH_FAILED


class HostKeyFailed(DriverError):
    exit_code = EXIT_HOST_KEY


class NoPython(DriverError):
    exit_code = EXIT_NO_PYTHON


class RequirementsFailed(DriverError):
    exit_code = EXIT_REQUIREMENTS_FAILED


class BadRequirements(DriverError):
    exit_code = EXIT_BAD_REQUIREMENTS


class WorkdirTooBig(DriverError):
    exit_code = EXIT_WORKDIR_TOO_BIG


class JobMissing(DriverError):
    exit_code = EXIT_NO_SUCH_JOB


class JobLost(DriverError):
    exit_code = EXIT_LOST


class BadNodes(DriverError):
    exit_code = EXIT_BAD_NODES


class PreflightFailed(DriverError):
    exit_code = EXIT_PREFLIGHT


class OutputsNotCopied(DriverError):
    """The outputs of a host could not be brought back; the job itself ended as it did."""

    exit_code = EXIT_OUTPUTS_NOT_COPIED


class Interrupted(DriverError):
    """SIGINT or SIGTERM stopped a command other than a job's own run (provision, logs, status, ...)."""

    def __init__(self, signal_name: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, EXIT_SIGINT if signal_name == "SIGINT" else EXIT_SIGTERM)


class AnsibleFailure(DriverError):
    """Ansible failed for a reason the driver does not classify further."""
