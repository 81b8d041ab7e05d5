"""The exceptions users see (they live here, not with the config dataclasses): the CLI wrapper
(ds_parrots.cli.errors.run_command) prints each on one line and maps it to an exit code.

    UserError      something the user gave is wrong (exit 2):
      ConfigError    a flag, a combination of flags, a config or checkpoint that does not fit the run
        TokenizerError a tokenizer file that is missing or unreadable, or training that sentencepiece refused
        DataError      a token file that is missing, damaged or does not fit the run
    RunAborted     a fault the run detected itself (exit 1)
    RunPreempted   a signal asked the run to stop; it saved a checkpoint (exit 75)
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user gave is wrong; the message names it and what to do. Exit code 2."""


class ConfigError(UserError):
    """A user-facing configuration mistake; the CLI prints its message on one line and exits 2."""


class DataError(ConfigError):
    """A token file that is missing, damaged or does not fit the run; the message names the file. (A subclass of
    ConfigError: the file comes in through a flag, and callers that refuse a bad input before launch catch
    both.)"""


class TokenizerError(ConfigError):
    """A tokenizer file that is missing or unreadable, or training that sentencepiece refused (a --tokenizer or
    --data.tokenizer flag that names no usable file, so a ConfigError)."""


class RunAborted(Exception):
    """A run stopped by a fault it detected (a lost rank, a non-finite loss, a failed checkpoint write): the CLI
    prints the message, which names what happened and how to continue, on one line and exits 1. `report`: false
    on ranks that stop for the same reason as a rank that reports it, so the message is printed once."""

    def __init__(self, message: str, report: bool = True):
        super().__init__(message)
        self.report = report


class RunPreempted(Exception):
    """A preemption signal stopped the run after it saved a checkpoint (training/preemption.py). Exit code 75,
    EX_TEMPFAIL ("try again later"), so that a scheduler or a wrapper script can tell it from a failure and
    requeue the job with --train.resume."""

    exit_code = 75

    def __init__(self, message: str, report: bool = True):
        super().__init__(message)
        self.report = report
