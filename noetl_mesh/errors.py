"""Errors the launcher reports to its user; each message says what failed and where to look."""

from __future__ import annotations


class LauncherError(Exception):
    """Base class: the CLI prints these as one message, without a traceback."""


class InfraError(LauncherError):
    """An embedded Postgres or NATS server could not be started or stopped."""


class StartError(LauncherError):
    """A mesh process did not become ready; what it had started was stopped again."""

    def __init__(self, message: str, *, name: str, log_tail: str) -> None:
        super().__init__(message)
        self.name = name
        self.log_tail = log_tail
