"""Print the flags of a service as a Markdown table (for README.md).

Usage: python scripts/flags_table.py transcriber
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def table(service: str) -> str:
    parser = importlib.import_module(f"{service}.config").parser()
    rows = ["| flag | environment variable | default | meaning |", "|---|---|---|---|"]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[0]
        env = parser.env_vars[flag.removeprefix("--")]
        meaning = (action.help or "").split(" [env ")[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            flag = f"{flag} / --no-{flag.removeprefix('--')}"
        rows.append(f"| `{flag}` | `{env}` | `{action.default}` | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(sys.argv[1]))
