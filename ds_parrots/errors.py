"""The exceptions users see: each is printed on one line by the CLI wrapper (ds_parrots.cli.errors),
which maps it to an exit code.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A user-facing configuration mistake; the CLI prints its message on one line and exits 2."""


class RunAborted(Exception):
    """A run stopped by a fault it detected (a lost rank, a non-finite loss, a failed checkpoint write): the CLI
    prints the message, which names what happened and how to continue, on one line and exits 1. `report`: false on
    ranks that stop for the same reason as a rank that reports it, so the message is printed once."""

    def __init__(self, message: str, report: bool = True):
        super().__init__(message)
        self.report = report


class DataError(ConfigError):
    """A token file that is missing, damaged or does not fit the run; the message names the file."""
