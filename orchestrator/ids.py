"""Ids of jobs and uploads: 128 random bits, 22 URL-safe characters.

A plain `secrets.token_urlsafe(16)` begins with "-" one time in 64, and such an id cannot
be typed after a command (`whospoke job -AbC...` reads as an unknown option, to argparse,
getopt and most shells' tools alike), so the first character is drawn from letters and
digits only. Ids issued before this rule (any of the 64 characters first) stay valid.
"""

from __future__ import annotations

import re
import secrets
import string

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
_FIRST = string.ascii_letters + string.digits


def new_id() -> str:
    """A fresh 22-character id that never starts with "-" or "_"."""
    return secrets.choice(_FIRST) + secrets.token_urlsafe(16)[1:]
