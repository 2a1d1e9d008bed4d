"""Incremental diarization: per-window inference as audio arrives, clustering at the end.

pyannote's pipeline slides a 10 s window over the whole file, segments each window
into up to three local speakers, embeds every (window, local speaker) pair and
clusters the embeddings. Here the first two steps run on each window as soon as
its audio has arrived, keeping only the per-window results (589 x 3 activity
frames and 3 x 192 embeddings), so after the last chunk only clustering and
reconstruction remain. Inactive local speakers are not embedded: pyannote
discards them after clustering anyway, so skipping them changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pyannote.audio import Model
from pyannote.audio.pipelines.clustering import AgglomerativeClustering
from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin
from pyannote.audio.utils.powerset import Powerset
from pyannote.core import Annotation, Segment, SlidingWindow, SlidingWindowFeature

from diarizer.models import EMBEDDING_DIM, CamPlusPlus
from whospoke.common.audio import SAMPLE_RATE, Samples

WINDOW_SAMPLES = 10 * SAMPLE_RATE


@dataclass(frozen=True)
class ClusteringSettings:
    threshold: float = 0.6
    method: str = "centroid"
    min_cluster_size: int = 12
    min_duration_off: float = 0.0


@dataclass(frozen=True)
class DiarizationResult:
    turns: Annotation
    exclusive: Annotation
    centroids: dict[str, np.ndarray[Any, Any]]


class IncrementalDiarizer:
    """One stream: `push` audio, `run` ready windows (worker thread), then `finish`."""

    def __init__(
        self,
        segmentation: Model,
        embedding: CamPlusPlus,
        step_seconds: float = 1.0,
        batch_size: int = 8,
        settings: ClusteringSettings | None = None,
    ) -> None:
        self._segmentation = segmentation
        self._embedding = embedding
        self._step = round(step_seconds * SAMPLE_RATE)
        self._batch_size = batch_size
        self._settings = settings or ClusteringSettings()
        self._powerset = Powerset(3, 2)
        self._lock = threading.Lock()
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0
        self._received = 0
        self._next_window = 0
        self._segmentations: list[np.ndarray[Any, Any]] = []
        self._embeddings: list[np.ndarray[Any, Any]] = []

    @property
    def received_samples(self) -> int:
        return self._received

    @property
    def buffered_samples(self) -> int:
        """Audio held for windows not yet analysed."""
        return self._buffer.size

    @property
    def analysed_samples(self) -> int:
        return min(self._received, self._next_window * self._step + WINDOW_SAMPLES)

    def push(self, samples: Samples) -> None:
        with self._lock:
            self._buffer = np.concatenate([self._buffer, samples])
            self._received += samples.size

    def run(self, final: bool, stop: threading.Event) -> Iterator[int]:
        """Process every window whose audio is complete (all of them when final)."""
        while not stop.is_set():
            starts = self._ready_windows(final)
            if not starts:
                return
            self._process([self._window(start) for start in starts])
            self._next_window += len(starts)
            self._trim()
            yield self.analysed_samples

    def _ready_windows(self, final: bool) -> list[int]:
        """Starts of the next windows to process, as pyannote's `Inference.slide` places them.

        Window k starts at k * step. Until the end only complete windows count; at the
        end one more, zero-padded, covers what is left (or the whole of a short stream).
        """
        n, step = self._received, self._step
        if n >= WINDOW_SAMPLES:
            total = (n - WINDOW_SAMPLES) // step + 1
            if final and (n - WINDOW_SAMPLES) % step:
                total += 1
        else:
            total = 1 if final and n > 0 else 0
        end = min(total, self._next_window + self._batch_size)
        return [k * step for k in range(self._next_window, end)]

    def _window(self, start: int) -> np.ndarray[Any, Any]:
        with self._lock:
            part = self._buffer[
                start - self._buffer_start : start - self._buffer_start + WINDOW_SAMPLES
            ]
        return np.pad(part, (0, WINDOW_SAMPLES - part.size))

    def _trim(self) -> None:
        with self._lock:
            drop = self._next_window * self._step - self._buffer_start
            if drop > 0:
                self._buffer = self._buffer[drop:]
                self._buffer_start += drop

    @torch.inference_mode()
    def _process(self, windows: list[np.ndarray[Any, Any]]) -> None:
        batch = torch.from_numpy(np.stack(windows))[:, None]
        activity = self._powerset.to_multilabel(self._segmentation(batch)).numpy()
        for waveform, frames in zip(batch, activity, strict=True):
            self._segmentations.append(frames.astype(np.float32))
            self._embeddings.append(self._embed(waveform, frames))

    def _embed(self, waveform: torch.Tensor, frames: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        vectors = np.full((frames.shape[1], EMBEDDING_DIM), np.nan, dtype=np.float32)
        active = np.flatnonzero(frames.sum(axis=0) > 0)
        if active.size == 0:
            return vectors
        features = self._embedding.fbank(waveform[:1])
        for speaker in active:
            weights = torch.from_numpy(frames[:, speaker])
            vectors[speaker] = self._embedding.embed(features, weights).numpy()
        return vectors

    def finish(
        self,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> DiarizationResult:
        """Cluster the per-window embeddings and rebuild speaker turns."""
        mixin = SpeakerDiarizationMixin
        duration = self._received / SAMPLE_RATE
        if not self._segmentations:
            return DiarizationResult(Annotation(), Annotation(), {})
        window = SlidingWindow(start=0.0, duration=10.0, step=self._step / SAMPLE_RATE)
        segmentations = SlidingWindowFeature(np.stack(self._segmentations), window)
        embeddings = np.stack(self._embeddings)
        num, low, high = mixin.set_num_speakers(num_speakers, min_speakers, max_speakers)
        frames = self._segmentation.receptive_field
        count = mixin.speaker_count(segmentations, frames, warm_up=(0.0, 0.0))
        if np.nanmax(count.data) == 0:
            return DiarizationResult(Annotation(), Annotation(), {})
        clustering = AgglomerativeClustering(metric="cosine")
        settings = self._settings
        clustering.instantiate(
            {
                "threshold": settings.threshold,
                "method": settings.method,
                "min_cluster_size": settings.min_cluster_size,
            }
        )
        hard, _, centroids = clustering(
            embeddings=embeddings,
            segmentations=segmentations,
            num_clusters=num,
            min_clusters=low,
            max_clusters=high,
        )
        count.data = np.minimum(count.data, high).astype(np.int8)
        hard[np.sum(segmentations.data, axis=1) == 0] = -2
        turns = self._annotate(segmentations, hard, count)
        count.data = np.minimum(count.data, 1).astype(np.int8)
        exclusive = self._annotate(segmentations, hard, count)
        mapping = {label: f"SPEAKER_{i:02d}" for i, label in enumerate(turns.labels())}
        extent = Segment(0, duration)
        turns = turns.rename_labels(mapping).crop(extent)
        exclusive = exclusive.rename_labels(mapping).crop(extent)
        named = {
            mapping[k]: centroids[k] for k in mapping if isinstance(k, int) and k < len(centroids)
        }
        return DiarizationResult(turns, exclusive, named)

    def _annotate(
        self, segmentations: SlidingWindowFeature, hard: np.ndarray[Any, Any], count: Any
    ) -> Annotation:
        num_chunks, num_frames, _ = segmentations.data.shape
        num_clusters = int(np.max(hard)) + 1
        clustered = np.nan * np.zeros((num_chunks, num_frames, max(num_clusters, 1)))
        for c, (cluster, (_, segmentation)) in enumerate(zip(hard, segmentations, strict=True)):
            for k in np.unique(cluster):
                if k == -2:
                    continue
                clustered[c, :, k] = np.max(segmentation[:, cluster == k], axis=1)
        discrete = SpeakerDiarizationMixin.to_diarization(
            SlidingWindowFeature(clustered, segmentations.sliding_window), count
        )
        annotation: Annotation = SpeakerDiarizationMixin.to_annotation(
            discrete, min_duration_on=0.0, min_duration_off=self._settings.min_duration_off
        )
        return annotation
