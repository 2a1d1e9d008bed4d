"""CAM++'s frame network exported to ONNX stands in for PyTorch on the CPU."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from diarizer.embedders import PooledEmbedder
from diarizer.engine import DiarizerModelConfig, PyannoteEngine
from diarizer.incremental import IncrementalDiarizer
from diarizer.models import CamPlusPlus, load_segmentation
from diarizer.onnx_embedding import (
    OnnxFrameNetwork,
    campplus_onnx,
    choose_embedding_runtime,
    export_campplus_onnx,
)
from whospoke.common.audio import SAMPLE_RATE, Samples

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def exported() -> OnnxFrameNetwork:
    path = campplus_onnx()
    assert path is not None, "make venv exports CAM++ to ONNX"
    return OnnxFrameNetwork(path, threads=2)


def test_frame_features_match_pytorch_on_speech(
    sample_audio: Samples, exported: OnnxFrameNetwork
) -> None:
    model = CamPlusPlus()
    # A live block with its context, a file's block, and a short tail.
    for start, seconds in ((0, 11.0), (5, 10.0), (27, 0.7)):
        audio = torch.from_numpy(sample_audio[start * SAMPLE_RATE :][: int(seconds * SAMPLE_RATE)])
        with torch.inference_mode():
            expected = model.frame_features(audio[None])
            got = model.frame_features(audio[None], exported)
        assert got.shape == expected.shape
        # Measured about 1e-5 on frame features of magnitude up to about 5.
        assert float((got - expected).abs().max()) < 1e-3


def test_the_same_turns_as_pytorch(sample_audio: Samples, exported: OnnxFrameNetwork) -> None:
    segmentation, model = load_segmentation(), CamPlusPlus()
    results = []
    for network in (None, exported):
        diarizer = IncrementalDiarizer(segmentation, PooledEmbedder(model, network=network))
        diarizer.push(sample_audio)
        stop = threading.Event()
        for _ in diarizer.run(True, stop):
            pass
        results.append(diarizer.finish())
    torch_turns, onnx_turns = (list(r.turns.itertracks(yield_label=True)) for r in results)
    assert onnx_turns == torch_turns
    assert len(results[1].turns.labels()) == 2


def test_the_cpu_engine_embeds_with_onnx_and_says_so() -> None:
    engine = PyannoteEngine(DiarizerModelConfig(device="cpu", threads=2))
    engine.load()
    assert engine.info().embedding_model.endswith("(ONNX Runtime)")
    torch_engine = PyannoteEngine(
        DiarizerModelConfig(device="cpu", threads=2, embedding_runtime="torch")
    )
    torch_engine.load()
    assert "ONNX" not in torch_engine.info().embedding_model


def test_onnx_is_refused_where_it_cannot_run() -> None:
    assert choose_embedding_runtime("auto", embedded=False, on_cpu=True, threads=0) is None
    assert choose_embedding_runtime("auto", embedded=True, on_cpu=False, threads=0) is None
    with pytest.raises(ValueError, match="another --embedding or a GPU"):
        choose_embedding_runtime("onnx", embedded=True, on_cpu=False, threads=0)


def test_export_is_checked_and_made_once(tmp_path: Path) -> None:
    path = export_campplus_onnx(tmp_path)
    assert path.parent == tmp_path and path.stat().st_size > 1_000_000
    modified = path.stat().st_mtime_ns
    assert export_campplus_onnx(tmp_path) == path
    assert path.stat().st_mtime_ns == modified
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
