"""The stock whole-file pyannote pipeline with the embedded models: the reference
that the incremental diarizer is measured against (accuracy and speed).

pyannote's constructor loads a PLDA for every clustering method; agglomerative
clustering never uses it, so an empty PLDA instance stands in and no hub is asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from diarizer.incremental import ClusteringSettings
from diarizer.models import CamPlusPlus, load_segmentation

STOCK_CLUSTERING = ClusteringSettings(
    threshold=0.6, method="centroid", min_cluster_size=12, run_margin=2.0
)
STOCK_PARAMETERS: dict[str, Any] = {
    "segmentation": {"min_duration_off": 0.0},
    "clustering": {
        "method": STOCK_CLUSTERING.method,
        "min_cluster_size": STOCK_CLUSTERING.min_cluster_size,
        "threshold": STOCK_CLUSTERING.threshold,
    },
}


def stock_pipeline(embedding_batch_size: int = 1) -> Any:
    """`SpeakerDiarization` with segmentation-3.0, CAM++ and agglomerative clustering."""
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.pipelines import SpeakerDiarization

    pipeline = SpeakerDiarization(
        segmentation=load_segmentation(),
        embedding=CamPlusPlus(),
        clustering="AgglomerativeClustering",
        plda=PLDA.__new__(PLDA),
        embedding_batch_size=embedding_batch_size,
    )
    pipeline.instantiate(STOCK_PARAMETERS)
    return pipeline


def diarize_whole(pipeline: Any, audio: np.ndarray[Any, Any], **speakers: int) -> Any:
    """Run the stock pipeline on in-memory audio; returns pyannote's DiarizeOutput."""
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
    return pipeline({"waveform": waveform, "sample_rate": 16_000}, **speakers)
