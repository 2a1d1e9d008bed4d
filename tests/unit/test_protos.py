"""The committed generated modules match what the pinned generator produces."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed_dir = ROOT / "whospoke" / "v1"
    committed = sorted(
        p.relative_to(ROOT)
        for p in committed_dir.iterdir()
        if p.is_file() and p.name != "__init__.py" and p.suffix in {".py", ".pyi"}
    )
    assert generated == committed, "run `make protos`: generated file set differs"
    stale = [str(p) for p in generated if not filecmp.cmp(tmp_path / p, ROOT / p, shallow=False)]
    assert not stale, f"run `make protos`: these differ from the .proto sources: {stale}"


def test_every_field_and_message_is_commented() -> None:
    """The contract is read by people in other languages: nothing goes undocumented."""
    undocumented = []
    for proto in sorted((ROOT / "protos").rglob("*.proto")):
        lines = proto.read_text().splitlines()
        for number, line in enumerate(lines):
            stripped = line.strip()
            declares = stripped.startswith(("message ", "enum ", "service ", "rpc ", "oneof "))
            is_field = (
                "=" in stripped
                and stripped.endswith(";")
                and not stripped.startswith(("syntax", "option", "package", "import"))
            )
            if (declares or is_field) and not lines[number - 1].strip().startswith("//"):
                undocumented.append(f"{proto.name}:{number + 1}: {stripped}")
    assert not undocumented, "\n".join(undocumented)
