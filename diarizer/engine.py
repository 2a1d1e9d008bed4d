"""pyannote.audio models behind the `DiarizationEngine` protocol.

Models load once, on the configured device. With `--device auto` a GPU is used
when one is visible, and the engine falls back to the CPU when moving the models
there or a first inference on it fails (seen on some ROCm GPUs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from pyannote.audio import Model
from pyannote.core import Annotation

from diarizer.domain import DiarizerEngineInfo
from diarizer.embedders import WINDOW_SAMPLES, Embedder, PooledEmbedder, WindowEmbedder
from diarizer.incremental import ClusteringSettings, IncrementalDiarizer
from diarizer.models import CamPlusPlus, load_embedding, load_segmentation
from diarizer.onnx_embedding import OnnxFrameNetwork, choose_embedding_runtime
from diarizer.onnx_segmentation import OnnxSegmentation, choose_segmentation
from whospoke.common.audio import Samples, seconds
from whospoke.common.errors import Unavailable
from whospoke.contract.diarization import (
    DiarizationOptions,
    DiarizationOutput,
    ProvisionalTurns,
    SpeakerInfo,
    Turn,
)

logger = logging.getLogger(__name__)


EMBEDDING_MODES = ("auto", "pooled", "per-window")
LIVE_BLOCK_SECONDS = 1.0
"""CAM++ block length of a live stream's speaker tracking (`PooledEmbedder`): its windows
wait at most this long. The final clustering keeps 10 s blocks, the embeddings `Process`
clusters, so the final turns do not depend on how the audio arrived."""


@dataclass(frozen=True)
class DiarizerModelConfig:
    segmentation: str = ""
    embedding: str = ""
    embedding_mode: str = "auto"
    hub_token: str = field(default="", repr=False)
    device: str = "auto"
    step_seconds: float = 1.0
    batch_size: int = 8
    threads: int = 0
    segmentation_runtime: str = "auto"
    """"onnx" (the CPU default when fetched) or "torch" (GPU, custom models)."""
    embedding_runtime: str = "auto"
    """CAM++'s frame network: "onnx" (the CPU default once exported) or "torch"."""
    clustering: ClusteringSettings = field(default_factory=ClusteringSettings)


class PyannoteEngine:
    def __init__(self, config: DiarizerModelConfig) -> None:
        self._config = config
        self._device = torch.device("cpu")
        self._models: tuple[torch.nn.Module, Model] | None = None
        self._frames: OnnxFrameNetwork | None = None

    @property
    def ready(self) -> bool:
        return self._models is not None

    def load(self) -> None:
        if self._config.threads:
            torch.set_num_threads(self._config.threads)
        token = self._config.hub_token or None
        segmentation = load_segmentation(self._config.segmentation, token)
        embedding = load_embedding(self._config.embedding, token)
        wanted = self._config.device
        if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
            try:
                segmentation.to("cuda")
                embedding.to("cuda")
                with torch.inference_mode():
                    segmentation(torch.zeros(1, 1, WINDOW_SAMPLES, device="cuda"))
                self._device = torch.device("cuda", torch.cuda.current_device())
            except Exception:
                if wanted == "cuda":
                    raise
                logger.exception("GPU unusable for diarization; falling back to the CPU")
                segmentation.to("cpu")
                embedding.to("cpu")
        on_cpu = self._device.type == "cpu"
        custom = bool(self._config.segmentation)
        runtime, threads = self._config.segmentation_runtime, self._config.threads
        chosen = choose_segmentation(segmentation, runtime, custom, on_cpu, threads)
        embedded = isinstance(embedding, CamPlusPlus)
        runtime = self._config.embedding_runtime
        self._frames = choose_embedding_runtime(runtime, embedded, on_cpu, threads)
        self._models = (chosen, embedding)

    def info(self) -> DiarizerEngineInfo:
        c = self._config
        return DiarizerEngineInfo(
            segmentation_model=(c.segmentation or "pyannote/segmentation-3.0 (embedded)")
            + (" (ONNX Runtime)" if self._onnx else ""),
            embedding_model=(c.embedding or "CAM++ 3D-Speaker zh-en common (embedded)")
            + (" (ONNX Runtime)" if self._frames else ""),
            embedding_mode=self.embedding_mode,
            device=self._device.type,
            clustering_method=c.clustering.method,
            clustering_threshold=c.clustering.threshold,
            min_cluster_size=c.clustering.min_cluster_size,
            window_step_seconds=c.step_seconds,
            device_index=self._device.index or 0,
        )

    @property
    def _onnx(self) -> bool:
        return self._models is not None and isinstance(self._models[0], OnnxSegmentation)

    @property
    def embedding_mode(self) -> str:
        """ "pooled" (CAM++ run once per stream) unless asked otherwise or not CAM++."""
        mode = self._config.embedding_mode
        if mode == "auto":
            return "per-window" if self._config.embedding else "pooled"
        return mode

    def open_session(self, options: DiarizationOptions) -> PyannoteSession:
        if self._models is None:
            raise Unavailable("the diarization models are still loading; retry shortly")
        segmentation, embedding = self._models
        embedder: Embedder
        tracking: Embedder | None = None
        if self.embedding_mode == "pooled" and isinstance(embedding, CamPlusPlus):
            embedder = PooledEmbedder(embedding, network=self._frames)
            if options.live_turns:
                tracking = PooledEmbedder(embedding, LIVE_BLOCK_SECONDS, self._frames)
        else:
            embedder = WindowEmbedder(embedding, self._config.batch_size)
        diarizer = IncrementalDiarizer(
            segmentation,
            embedder,
            step_seconds=self._config.step_seconds,
            batch_size=self._config.batch_size,
            settings=self._config.clustering,
        )
        if options.live_turns:
            most = options.num_speakers or options.max_speakers
            diarizer.go_live(options.live_latency_seconds, most, tracking)
        return PyannoteSession(diarizer, options)


class PyannoteSession:
    def __init__(self, diarizer: IncrementalDiarizer, options: DiarizationOptions) -> None:
        self._diarizer = diarizer
        self._options = options

    def live_turns(self) -> ProvisionalTurns:
        return self._diarizer.live_turns()

    @property
    def received_seconds(self) -> float:
        return seconds(self._diarizer.received_samples)

    @property
    def analysed_seconds(self) -> float:
        return seconds(self._diarizer.analysed_samples)

    @property
    def buffered_seconds(self) -> float:
        return seconds(self._diarizer.buffered_samples)

    def push(self, samples: Samples) -> None:
        self._diarizer.push(samples)

    def run(self, final: bool, stop: threading.Event) -> Iterator[float]:
        for analysed in self._diarizer.run(final, stop):
            yield seconds(analysed)

    def finish(self) -> DiarizationOutput:
        o = self._options
        result = self._diarizer.finish(o.num_speakers, o.min_speakers, o.max_speakers)
        speakers = tuple(
            SpeakerInfo(
                speaker=label,
                speech_seconds=float(result.turns.label_duration(label)),
                embedding=tuple(float(v) for v in result.centroids.get(label, np.zeros(0))),
            )
            for label in result.turns.labels()
        )
        return DiarizationOutput(_turns(result.turns), _turns(result.exclusive), speakers)


def _turns(annotation: Annotation) -> tuple[Turn, ...]:
    return tuple(
        Turn(float(segment.start), float(segment.end), str(label))
        for segment, _, label in annotation.itertracks(yield_label=True)
    )
