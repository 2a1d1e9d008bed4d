"""The ONNX segmentation model's cache entry: used only when its pinned digest matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from whospoke.common.errors import FailedPrecondition
from whospoke.common.models import SEGMENTATION_ONNX_SHA256, segmentation_onnx


def test_missing_means_not_fetched(tmp_path: Path) -> None:
    assert segmentation_onnx(tmp_path) is None


def test_a_tampered_file_is_refused_naming_the_fix(tmp_path: Path) -> None:
    cached = tmp_path / f"segmentation-3.0-{SEGMENTATION_ONNX_SHA256[:12]}.onnx"
    cached.write_bytes(b"not the model")
    with pytest.raises(FailedPrecondition, match="make venv"):
        segmentation_onnx(tmp_path)
