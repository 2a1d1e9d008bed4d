"""A service's CPU priority (Unix niceness).

When the transcriber and the diarizer share cores (`whospoke serve` on one machine), the
kernel gives them equal shares, and a job's first words wait behind diarization work whose
turns are needed only at the end of the job. A diarizer at a higher niceness still uses
every core the transcriber leaves idle (fewer threads would leave cores idle instead), yet
yields them whenever the transcriber has work: `bench/threads_bench.py` measures the trade.

Linux keeps niceness per thread: every thread the process has is changed, and threads
started later inherit it from the thread that starts them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

TASKS = Path("/proc/self/task")
MAX_NICENESS = 19


def set_niceness(niceness: int) -> int:
    """Raise every thread of this process to `niceness` (0: leave it) and return the niceness
    of the calling thread. Never lowered: that needs privileges, and an operator's `nice`
    around the service already says what they want."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0
    threads = [int(task.name) for task in TASKS.iterdir()] if TASKS.is_dir() else [0]
    for thread in threads:
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            if os.getpriority(os.PRIO_PROCESS, thread) < niceness:
                os.setpriority(os.PRIO_PROCESS, thread, niceness)
    current = os.getpriority(os.PRIO_PROCESS, 0)
    logger.info("CPU niceness %d", current)
    return current
