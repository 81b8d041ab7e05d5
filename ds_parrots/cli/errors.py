"""The one place our exceptions become exit codes and one-line messages, for every console command:

    UserError (ConfigError, DataError, TokenizerError)   a user's mistake: `error: <message>` on stderr, exit 2
    RunAborted                                 a fault the run detected: the message (once, from the rank that
                                               reports it), exit 1
    RunPreempted                               a preemption signal; a checkpoint was saved: the message, exit 75
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from ds_parrots.errors import RunAborted, RunPreempted, UserError

USAGE_ERROR = 2
RUN_ABORTED = 1


def run_command(command: Callable[[], int]) -> int:
    """Run `command()` and turn our exceptions into exit codes."""
    try:
        return command()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return USAGE_ERROR
    except RunPreempted as e:
        if e.report:
            print(e, file=sys.stderr, flush=True)
        return RunPreempted.exit_code
    except RunAborted as e:
        if e.report:
            print(f"error: {e}", file=sys.stderr, flush=True)
        return RUN_ABORTED
