"""The ONNX export of segmentation-3.0 stands in for the PyTorch model on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diarizer.engine import DiarizerModelConfig, PyannoteEngine
from diarizer.models import load_segmentation
from diarizer.onnx_segmentation import OnnxSegmentation, choose_segmentation
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.common.models import segmentation_onnx

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def onnx_path() -> object:
    path = segmentation_onnx()
    assert path is not None, "make venv fetches the ONNX segmentation model"
    return path


def test_onnx_scores_match_pytorch(sample_audio: Samples, onnx_path: object) -> None:
    model = load_segmentation()
    onnx = choose_segmentation(model, "auto", custom=False, on_cpu=True, threads=2)
    assert isinstance(onnx, OnnxSegmentation)
    starts = range(0, 20 * SAMPLE_RATE, 5 * SAMPLE_RATE)
    batch = torch.from_numpy(np.stack([sample_audio[s : s + 10 * SAMPLE_RATE] for s in starts]))
    with torch.inference_mode():
        expected = model(batch[:, None])
        got = onnx(batch[:, None])
    assert got.shape == expected.shape == (4, 589, 7)
    # Measured 2.1e-4 at most (log-probabilities); the powerset class of every frame agrees.
    assert float((got - expected).abs().max()) < 2e-3
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    assert onnx.receptive_field == model.receptive_field
    assert next(onnx.parameters()).device.type == "cpu"


def test_the_cpu_engine_segments_with_onnx_and_says_so(onnx_path: object) -> None:
    engine = PyannoteEngine(DiarizerModelConfig(device="cpu", threads=2))
    engine.load()
    assert engine.info().segmentation_model.endswith("(ONNX Runtime)")
    torch_engine = PyannoteEngine(
        DiarizerModelConfig(device="cpu", threads=2, segmentation_runtime="torch")
    )
    torch_engine.load()
    assert "ONNX" not in torch_engine.info().segmentation_model


def test_onnx_is_refused_where_it_cannot_run() -> None:
    model = load_segmentation()
    assert choose_segmentation(model, "auto", custom=True, on_cpu=True, threads=0) is model
    assert choose_segmentation(model, "auto", custom=False, on_cpu=False, threads=0) is model
    with pytest.raises(ValueError, match="custom model or a GPU"):
        choose_segmentation(model, "onnx", custom=False, on_cpu=False, threads=0)
