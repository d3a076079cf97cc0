"""The errors a stage can raise, each with its exit code and whether a retry can help.

    0  success
    1  a stage failed (an unexpected error; a retry may help)
    2  bad usage or configuration: the message names the setting (a retry cannot help)
    3  the quality gate stopped the run (a retry of the same data cannot help)
    4  the row-conservation check failed (rows were lost or doubled; investigate, do not retry)
    5  a dependency is unreachable or busy (S3, Kafka, MLflow, Postgres, a lease): retry later
    6  a stage refused its input or the lake's state (the message says what to do; a retry cannot help)

The exit code alone says whether a retry can help (NO_RETRY_EXIT_CODES), because a pod tells the
pod operator nothing else: the CLI exits with it, and the DAG's two modes (inline and pods) both
retry or fail now by it.
"""

from __future__ import annotations

EXIT_OK, EXIT_STAGE, EXIT_CONFIG, EXIT_GATE, EXIT_CONSERVATION, EXIT_UNAVAILABLE, EXIT_REFUSED = 0, 1, 2, 3, 4, 5, 6
NO_RETRY_EXIT_CODES = (EXIT_CONFIG, EXIT_GATE, EXIT_CONSERVATION, EXIT_REFUSED)


class MdpError(Exception):
    exit_code = EXIT_STAGE
    retryable = True


class ConfigError(MdpError, ValueError):
    """A bad setting: the message names the key (and the endpoint where there is one)."""

    exit_code = EXIT_CONFIG
    retryable = False


class StageError(MdpError, RuntimeError):
    """A stage refused to go on: input it cannot handle, or a state a retry cannot change."""

    exit_code = EXIT_REFUSED
    retryable = False


class GateFailed(StageError):
    """The data-quality gate rejected the staged Silver."""

    exit_code = EXIT_GATE


class ConservationError(StageError):
    """Rows counted from independent sources disagree: something was lost or doubled."""

    exit_code = EXIT_CONSERVATION


class Unavailable(MdpError, ConnectionError):
    """A dependency did not answer, or answered that it is busy. Retryable."""

    exit_code = EXIT_UNAVAILABLE
    retryable = True


class Busy(Unavailable):
    """Another writer holds the lease on a lake dataset."""


def exit_code_for(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, MdpError) else EXIT_STAGE
