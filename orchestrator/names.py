"""What a known speaker may be called: checked once for enrolled and per-job voices."""

from __future__ import annotations

import re

from whospoke.common.errors import InvalidArgument

NAME = re.compile(r"[^\s\x00-\x1f](?:[^\x00-\x1f]{0,62}[^\s\x00-\x1f])?")
"""1 to 64 printable characters, no spaces at either end."""


def checked_name(raw: str, field: str = "name") -> str:
    name = raw.strip()
    if not NAME.fullmatch(name):
        raise InvalidArgument(f"{field}: give 1 to 64 printable characters")
    if name.upper().startswith("SPEAKER_"):
        raise InvalidArgument(f"{field}: {name!r} looks like an anonymous label (SPEAKER_NN)")
    return name
