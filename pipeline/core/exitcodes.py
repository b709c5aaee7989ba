"""Every exit code the tool ends with, a run's and the CLI's own (README, "Exit codes")."""

from __future__ import annotations

import enum
import signal


class ExitCode(enum.IntEnum):
    OK = 0
    ROWS_FAILED = 1  # the run ended, some rows are in failures/
    BAD_INPUT = 2  # the spec or the input is wrong
    ABORTED = 3  # the service refuses the job as a whole
    BUDGET = 4  # stopped at max_rows, max_tokens, max_cost or --max-duration: run again to continue
    OUTPUT = 5  # the output could not be written
    INTERNAL = 70  # a bug (EX_SOFTWARE)
    LOCKED = 75  # another run holds the output's lock (EX_TEMPFAIL)
    SIGINT = 130  # 128 + the signal's number, as shells report it
    SIGTERM = 143


SIGNAL_EXIT = {signal.SIGINT: ExitCode.SIGINT, signal.SIGTERM: ExitCode.SIGTERM}
