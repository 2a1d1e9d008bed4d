"""The structure that lets each service deploy alone: what the orchestrator loads.

`make lint` checks the import graph statically (import-linter contracts in
pyproject.toml); this test checks what actually gets loaded, which also catches
imports made at run time.
"""

from __future__ import annotations

import subprocess
import sys

MODEL_STACK = {"torch", "torchaudio", "faster_whisper", "ctranslate2", "pyannote"}
SERVICES = {"transcriber", "diarizer"}


def loaded_by(*modules: str) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += "print('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return {name.split(".")[0] for name in result.stdout.split()}


def test_the_orchestrator_and_the_cli_load_no_model_stack_and_no_other_service() -> None:
    roots = loaded_by("orchestrator.__main__", "whospoke.cli.main")
    assert "orchestrator" in roots and "grpc" in roots
    assert not roots & (MODEL_STACK | SERVICES)
