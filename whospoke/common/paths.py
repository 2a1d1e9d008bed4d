"""Where whospoke keeps data that must outlive a process: the jobs database and uploads.

`whospoke serve` and the orchestrator share one default, so that a job submitted to
one and looked up through the other (or after a restart) is found in the same place.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "whospoke"


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/whospoke`, else `~/.local/share/whospoke` (the XDG base directory rule).

    A relative `XDG_DATA_HOME` is ignored, as the specification requires: it would
    move the jobs database with the current directory.
    """
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP
    return Path.home() / ".local" / "share" / APP
