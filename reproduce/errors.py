"""Errors the harness raises on purpose: the CLI prints them without a traceback."""

from __future__ import annotations


class ReproduceError(Exception):
    """A problem the user can act on; the message says what and where."""


class ConfigError(ReproduceError):
    """A config or spec file has a bad key or value."""


class UnknownNameError(ConfigError):
    """A registry lookup failed."""


class DatasetMissingError(ReproduceError):
    """A dataset is not prepared on disk and may not be downloaded."""


class ChecksumError(ReproduceError):
    """A file's checksum does not match the expected value."""


class TrainingDivergedError(ReproduceError):
    """A loss became NaN or infinite."""


EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later"; Snakemake retries the job


class Preempted(ReproduceError):
    """A run stopped at a checkpoint before finishing (signal or walltime); rerunning resumes it."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        # what stopped it: "SIGURG", "SIGUSR1", "SIGTERM" or "walltime deadline" (None: not said)
        self.reason = reason
