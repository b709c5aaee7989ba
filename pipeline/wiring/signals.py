"""SIGINT/SIGTERM during a run: stop taking rows and drain; a second signal stops at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from pipeline.core.exitcodes import SIGNAL_EXIT
from pipeline.wiring.control import RunControl


@contextlib.contextmanager
def stop_on_signals(control: RunControl, enabled: bool) -> Iterator[None]:
    """While the block runs, a signal stops the run through `control` (when `enabled`: the CLI's runs)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers; run_job relays Ctrl-C from its caller instead
        return
    loop = asyncio.get_running_loop()
    for signum, code in SIGNAL_EXIT.items():
        loop.add_signal_handler(signum, control.on_loop, f"interrupted by {signum.name}", code)
    try:
        yield
    finally:
        for signum in SIGNAL_EXIT:
            loop.remove_signal_handler(signum)
