"""Size limits from the developers' guide: files under 400 lines, functions under 60.

Small units are what keep each module reviewable on its own; a test keeps the limit
from eroding one exception at a time. Generated protobuf code is exempt.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def python_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if not name.startswith("whospoke/v1/")]


def test_files_and_functions_stay_small() -> None:
    files = python_files()
    assert len(files) > 50  # the listing worked
    too_long: list[str] = []
    for path in files:
        if not path.exists():
            continue  # deleted in the working tree, not yet committed
        source = path.read_text()
        name = path.relative_to(ROOT)
        if (lines := source.count("\n")) >= MAX_FILE_LINES:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}(): {length} lines")
    assert not too_long, "\n".join(too_long)
