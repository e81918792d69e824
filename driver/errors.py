"""Typed errors of the driver, the one table of exit codes, and the failure kinds the roles report.

Every failure the user can cause or meet is a DriverError subclass carrying its exit code and a hint;
the CLI (driver/cli/app.py) maps them to one `error:` line plus a `hint:` line. EXIT_CODES is the one table
of codes, each row named by its EXIT_* constant (the CLI names codes by these, never by number): `--help`
prints it (driver/cli/app.py) and a test checks README.md's table against it. The roles
report a failure with a kind (the fact `<role>_failure: {kind, msg}`); FAILURE_KINDS maps each kind to its
error class and hint, so that no exit code depends on a task's name or a message's wording.
"""

from __future__ import annotations

# Outcomes of the job itself.
EXIT_OK = 0
EXIT_SCRIPT_OWN = "1-123"  # a range: the script's own exit code
EXIT_TIMEOUT = 124
EXIT_DRIVER_FAILURE = 125
EXIT_CANNOT_RUN = 127
EXIT_SIGNAL = "128+N"  # a range: the script died from signal N
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
# Bad input and unusable hosts: one code each.
EXIT_USAGE = 2
EXIT_BAD_VALUE = 64
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
EXIT_CLUSTER_UNREACHABLE = 82
EXIT_CLUSTER_NOT_READY = 83
EXIT_OUTPUTS_NOT_COPIED = 84
EXIT_BAD_OUTPUT = 85
EXIT_STAGE_FAILED = 86
EXIT_STILL_RUNNING = 87
EXIT_ENGINE = 88
EXIT_IMAGE = 89
EXIT_BAD_CONTAINER = 90
EXIT_DISCONNECTED = 91
EXIT_NO_SPACE = 92
# The Slurm executor's own ends.
EXIT_SLURM_REFUSED = 93
EXIT_OUT_OF_MEMORY = 94
EXIT_NODE_FAILURE = 95
EXIT_PREEMPTED = 96
EXIT_NEVER_STARTED = 97
# This machine's rsync cannot be trusted with what a host sends.
EXIT_UNSAFE_RSYNC = 98

# A row of the exit-code table: one code (EXIT_TIMEOUT), or a range of them (EXIT_SCRIPT_OWN, EXIT_SIGNAL).
ExitCode = int | str

# The one table of exit codes: (code, meaning). README.md's table and `--help` are checked against it.
_EXIT_TABLE: tuple[tuple[ExitCode, str], ...] = (
    (EXIT_OK, "the script succeeded on every host"),
    (EXIT_SCRIPT_OWN, "the script's own exit code (the first non-zero one over the hosts)"),
    (EXIT_TIMEOUT, "--timeout reached; the job was stopped on every host"),
    (EXIT_DRIVER_FAILURE, "the driver failed in an unexpected way (the message says what)"),
    (EXIT_CANNOT_RUN, "the script could not be started on the host (for example --python not found)"),
    (EXIT_SIGNAL, "the script died from signal N (137 = SIGKILL)"),
    (EXIT_SIGINT, "interrupted (Ctrl+C); the job was stopped on every host"),
    (EXIT_SIGTERM, "the driver got SIGTERM; the job was stopped on every host"),
    (EXIT_USAGE, "invalid command line (unknown option, missing argument, script options without --)"),
    (
        EXIT_BAD_VALUE,
        "invalid duration or size (--timeout, --grace, --sync-every, --older-than, --max-workdir-size)",
    ),
    (EXIT_BAD_ENV, "invalid --env"),
    (EXIT_SCRIPT_MISSING, "script not found or not readable"),
    (EXIT_SCRIPT_IS_DIR, "script is a directory"),
    (EXIT_BAD_INVENTORY, "inventory missing, empty or not parsable"),
    (EXIT_NO_HOSTS, "--limit (or the inventory) matches no host"),
    (EXIT_UNREACHABLE, "host unreachable (connection refused, unknown name, timeout)"),
    (EXIT_AUTH_FAILED, "SSH authentication failed"),
    (EXIT_HOST_KEY, "host key verification failed (unknown or changed key)"),
    (EXIT_NO_PYTHON, "no usable python on the host"),
    (EXIT_BAD_WORKDIR, "--workdir missing or not a directory"),
    (
        EXIT_REQUIREMENTS_FAILED,
        "requirements could not be installed on a host (pip, system packages or the wheelhouse)",
    ),
    (EXIT_BAD_REQUIREMENTS, "--requirements file or --wheelhouse missing"),
    (EXIT_WORKDIR_TOO_BIG, "the workdir is larger than --max-workdir-size"),
    (EXIT_NO_SUCH_JOB, "no such job (status, logs, cancel, wait), or its directory is gone from a host"),
    (EXIT_LOST, "the job was lost: it no longer runs and left no exit code"),
    (
        EXIT_BAD_NODES,
        "--nodes invalid or larger than the number of matched hosts; --nproc-per-node invalid or alone",
    ),
    (
        EXIT_PREFLIGHT,
        "multi-node preflight failed (rendezvous port unreachable, versions differ); no rank started",
    ),
    (
        EXIT_CLUSTER_UNREACHABLE,
        "submit / cluster status: no kubeconfig, or the cluster is unreachable or refused the TrainJob",
    ),
    (
        EXIT_CLUSTER_NOT_READY,
        "driver cluster status: something is missing (Trainer, the runtime or its Secrets); "
        "driver submit --follow: the pod cannot start",
    ),
    (
        EXIT_OUTPUTS_NOT_COPIED,
        "the script succeeded but its outputs could not be copied back (they stay on the host)",
    ),
    (EXIT_BAD_OUTPUT, "invalid --output (empty, absolute, or outside the job's directory) or --output-dir"),
    (
        EXIT_STAGE_FAILED,
        "the workdir could not be staged to a host (rsync 3.2.3 or newer is needed there and here)",
    ),
    (EXIT_STILL_RUNNING, "driver wait: the job still runs after --timeout (it goes on)"),
    (
        EXIT_ENGINE,
        "--image: no usable container engine on a host (or no NVIDIA container toolkit for --gpus)",
    ),
    (EXIT_IMAGE, "--image: the image could not be pulled, built or loaded on a host"),
    (
        EXIT_BAD_CONTAINER,
        "invalid container options (--image, --gpus, --shm-size, --build, --image-from-local)",
    ),
    (
        EXIT_DISCONNECTED,
        "the connection to a host was lost for longer than the driver waits; the job goes on there "
        "(`driver logs -f JOB` reattaches)",
    ),
    (EXIT_NO_SPACE, "no space left on a host's disk (staging, provisioning or the job's directory)"),
    (
        EXIT_SLURM_REFUSED,
        "Slurm refused the job (sbatch's reason is quoted: partition, account, qos, an option)",
    ),
    (EXIT_OUT_OF_MEMORY, "Slurm: the job ran out of memory (OUT_OF_MEMORY)"),
    (EXIT_NODE_FAILURE, "Slurm: a node of the job failed (NODE_FAIL, BOOT_FAIL)"),
    (EXIT_PREEMPTED, "Slurm: the job was preempted"),
    (EXIT_NEVER_STARTED, "Slurm: the job was cancelled before it started (it never left the queue)"),
    (
        EXIT_UNSAFE_RSYNC,
        "rsync here predates the fixes against a malicious sender (protocol < 32): outputs are not received",
    ),
)
# The table as README.md and `--help` write it: each code as a string.
EXIT_CODES: tuple[tuple[str, str], ...] = tuple((str(code), meaning) for code, meaning in _EXIT_TABLE)
EXIT_MEANINGS: dict[str, str] = dict(EXIT_CODES)


def exit_meaning(code: ExitCode) -> str:
    """What an exit code (or a range of them) means, from the one table; KeyError for a code not in it."""
    return EXIT_MEANINGS[str(code)]


class DriverError(Exception):
    """An error with a message for the user, a hint on what to do, and the driver's exit code."""

    exit_code = EXIT_DRIVER_FAILURE

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(DriverError):
    exit_code = EXIT_USAGE


class BadValue(DriverError):
    """An invalid duration or size."""

    exit_code = EXIT_BAD_VALUE


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


class BadJobId(UsageError):
    """A job id that cannot name a job directory (`../x`, `a/b`): refused before any path is made of it."""


class JobLost(DriverError):
    exit_code = EXIT_LOST


class BadNodes(DriverError):
    exit_code = EXIT_BAD_NODES


class PreflightFailed(DriverError):
    exit_code = EXIT_PREFLIGHT


class ClusterUnreachable(DriverError):
    exit_code = EXIT_CLUSTER_UNREACHABLE


class ClusterNotReady(DriverError):
    exit_code = EXIT_CLUSTER_NOT_READY


class OutputsNotCopied(DriverError):
    """The outputs of a host could not be brought back; the job itself ended as it did."""

    exit_code = EXIT_OUTPUTS_NOT_COPIED


class UnsafeRsync(OutputsNotCopied):
    """This machine's rsync lacks the fixes against a malicious sender: it receives nothing from a host."""

    exit_code = EXIT_UNSAFE_RSYNC


class BadOutput(DriverError):
    exit_code = EXIT_BAD_OUTPUT


class StageFailed(DriverError):
    exit_code = EXIT_STAGE_FAILED


class StillRunning(DriverError):
    exit_code = EXIT_STILL_RUNNING


class EngineMissing(DriverError):
    exit_code = EXIT_ENGINE


class ImageFailed(DriverError):
    exit_code = EXIT_IMAGE


class BadContainer(DriverError):
    exit_code = EXIT_BAD_CONTAINER


class Disconnected(DriverError):
    """The driver lost a host while following a job that goes on there: reattach with `driver logs -f`."""

    exit_code = EXIT_DISCONNECTED


class NoSpace(DriverError):
    exit_code = EXIT_NO_SPACE


class SlurmRefused(DriverError):
    exit_code = EXIT_SLURM_REFUSED


class Interrupted(DriverError):
    """SIGINT or SIGTERM stopped a command other than a job's own run (provision, logs, status, ...)."""

    def __init__(self, signal_name: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, EXIT_SIGINT if signal_name == "SIGINT" else EXIT_SIGTERM)


class AnsibleFailure(DriverError):
    """Ansible failed for a reason the driver does not classify further."""


# Failure kinds reported by the roles (`<role>_failure.kind`) -> the error raised and its hint.
FAILURE_KINDS: dict[str, tuple[type[DriverError], str | None]] = {
    "nodes": (BadNodes, "lower --nodes, or widen --limit or the inventory"),
    "preflight": (
        PreflightFailed,
        "check MASTER_ADDR (set train_master_addr per host in the inventory), the firewall, "
        "--master-port, and that every host has the same python/torch",
    ),
    "no_python": (NoPython, "install python3 (3.9 or newer) on the host, or set remote_host_python for it"),
    "helper_python": (
        NoPython,
        "install python3 (3.6 or newer) on the host, or set ansible_python_interpreter for it",
    ),
    "requirements": (
        RequirementsFailed,
        "fix the requirement (name, version, index or wheelhouse) and run again",
    ),
    "system_packages": (
        RequirementsFailed,
        "check the package names and that the user may escalate privileges (become)",
    ),
    "wheelhouse": (RequirementsFailed, "hosts need rsync for --wheelhouse; check the space on the host"),
    "stage": (StageFailed, "hosts need rsync 3.2.3 or newer (and this machine rsync) for --workdir"),
    "outputs": (
        OutputsNotCopied,
        "they stay in the job's directory on the host; make rsync (3.2.3+) available there and here, "
        "then `driver status JOB` copies them",
    ),
    "missing": (JobMissing, "it may have been cleaned; see `driver jobs`"),
    "bad_output": (BadOutput, "give --output as a directory relative to the job's working directory"),
    "engine": (
        EngineMissing,
        "install podman or docker on the host (usable by the SSH user), or pick one with --engine",
    ),
    "gpu_toolkit": (
        EngineMissing,
        "install the NVIDIA container toolkit on the host (podman: generate its CDI spec with nvidia-ctk)",
    ),
    "image": (
        ImageFailed,
        "check the image name and the host's registry access; --image-from-local sends a local image, "
        "--build builds it from the workdir's Containerfile",
    ),
    "slurm_refused": (
        SlurmRefused,
        "fix that value (`sinfo -s` on the login node lists partitions; `sacctmgr show assoc user=$USER` "
        "accounts and QOS where accounting is on), or set it per site in training_job_slurm",
    ),
    "no_slurm": (
        SlurmRefused,
        "point the inventory at a Slurm login node (where sbatch runs), or leave out --executor slurm "
        "(and the host's training_job_executor)",
    ),
    "executor": (UsageError, "check --executor and the host's training_job_executor in the inventory"),
    "launch": (AnsibleFailure, "rerun with -vv to see what the host said"),
    "clean": (AnsibleFailure, "rerun with -vv to see what the host said"),
}


# What the host's OS says when a disk or quota is full (strerror of ENOSPC and EDQUOT), whoever ran into it:
# rsync, tar, pip, the engine. Like ssh's words for an unreachable host, the OS's own words are read.
NO_SPACE_WORDS = ("No space left on device", "Disk quota exceeded")
# Kinds of failures that happen on the host's disk (outputs are written here, not there).
ON_HOST_DISK = ("stage", "launch", "requirements", "wheelhouse", "image", "no_python", "helper_python")


def no_space(failure: dict) -> bool:
    """Whether a failure a role reported happened because the host's disk (or quota) is full."""
    text = str(failure.get("msg") or "")
    return str(failure.get("kind")) in ON_HOST_DISK and any(words in text for words in NO_SPACE_WORDS)


def failure_error(failure: dict) -> DriverError:
    """The typed error of a failure a role reported ({kind, msg, ...})."""
    cls, hint = FAILURE_KINDS.get(str(failure.get("kind")), (AnsibleFailure, None))
    message = str(failure.get("msg") or failure.get("kind"))
    if no_space(failure):
        host = failure.get("host") or "the host"
        return NoSpace(
            message,
            hint=f"free space on {host}: `driver clean -i INVENTORY --older-than 0` removes ended jobs, "
            "`driver cache prune -i INVENTORY` unused venvs; then run the job again",
        )
    if failure.get("kind") == "nodes" and isinstance(failure.get("matched"), list):
        # In the command line's words: the option, and which hosts matched.
        matched = failure["matched"]
        message = f"--nodes {failure.get('wanted')} but only {len(matched)} hosts match: {', '.join(matched)}"
    return cls(message, hint=hint)
