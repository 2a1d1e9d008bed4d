"""Incremental diarization: per-window inference as audio arrives, clustering at the end.

pyannote's pipeline slides a 10 s window over the whole file, segments each window
into up to three local speakers, embeds every (window, local speaker) pair and
clusters the embeddings. Here the first two steps run as soon as the audio they
need has arrived (see `diarizer.embedders`), keeping only compact per-window
results (589 x 3 activity bits and 3 x 192 embeddings), so after the last chunk
only clustering and reconstruction remain. Inactive local speakers are not
embedded: pyannote discards them after clustering anyway.

A live stream (`go_live`) may track its speakers with embeddings of its own (CAM++ in
1 s blocks, ready within a second of the audio) while the clustering at the end uses the
same embeddings a complete file gets, so a live stream's final turns are those `Process`
gives for the same audio.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin
from pyannote.audio.utils.powerset import Powerset
from pyannote.core import Annotation, Segment, SlidingWindow, SlidingWindowFeature

from diarizer import reconstruct, runs
from diarizer.clustering import BoundedClustering
from diarizer.embedders import WINDOW_SAMPLES, Embedder, Window
from diarizer.online import OnlineDiarizer
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.contract.diarization import ProvisionalTurns

LINKAGES = ("average", "centroid")
RUN_MARGIN = 0.1


@dataclass(frozen=True)
class ClusteringSettings:
    """Agglomerative clustering of the (window, speaker) embeddings.

    Average linkage: two clusters are as far apart as their members are on average (cosine
    distance). pyannote's default, centroid linkage, compares the means of unit vectors,
    which shrink as a cluster spreads: two large, diffuse clusters end up closer than their
    voices are, so on a long recording two similar voices merged into one speaker (the
    Asterisk conversation) while short ones kept them apart. With average linkage a
    cluster's size and spread do not move the criterion. `bench/diarizer_tuning.py`: every
    threshold from 0.37 to 0.41 gives the same speakers on the dev clips, the joined meeting,
    sample.wav and the conversation; 0.39 is the middle of that range.

    A cluster of fewer than `min_cluster_size` (window, speaker) embeddings joins the
    nearest larger one: with 10 s windows every 1 s, a voice heard for a second or so
    appears in about ten windows. pyannote's 12 folded short-spoken people of the joined
    meeting into others (7 of 21 speakers, DER 35.8 %); 7 to 9 find 8 to 10 of them (DER
    32.9-34.8 %), 6 and below over-split it (13 speakers, 36.0 %), and the clips, sample.wav
    and the conversation do not change from 2 to 20. 8 is the middle of that range.
    """

    threshold: float = 0.39
    method: str = "average"
    min_cluster_size: int = 8
    min_duration_off: float = 0.0
    run_margin: float = RUN_MARGIN
    """How much closer (cosine similarity) a speech run must be to another speaker's
    centroid to move there (`diarizer.runs`); 2 or more: runs never move."""


class Segmentation(Protocol):
    """segmentation-3.0 as PyTorch `Model` or its ONNX stand-in (diarizer/onnx_segmentation.py)."""

    @property
    def receptive_field(self) -> SlidingWindow: ...

    def __call__(self, waveforms: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...


@dataclass(frozen=True)
class DiarizationResult:
    turns: Annotation
    exclusive: Annotation
    centroids: dict[str, np.ndarray[Any, Any]]


class IncrementalDiarizer:
    """One stream: `push` audio, `run` ready windows (worker thread), then `finish`."""

    def __init__(
        self,
        segmentation: Segmentation,
        embedder: Embedder,
        step_seconds: float = 1.0,
        batch_size: int = 8,
        settings: ClusteringSettings | None = None,
    ) -> None:
        self._segmentation = segmentation
        self._live: OnlineDiarizer | None = None
        self._live_embedder: Embedder | None = None
        """Embeds windows for the tracker alone (None: the tracker takes the stored ones)."""
        self._live_pending: list[Window] = []
        self._tracked = 0
        self._embedder = embedder
        self._step = round(step_seconds * SAMPLE_RATE)
        self._batch_size = batch_size
        self._settings = settings or ClusteringSettings()
        self._powerset = Powerset(3, 2)
        self._lock = threading.Lock()
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0
        self._received = 0
        self._segmentations: list[np.ndarray[Any, Any]] = []
        self._pending: list[Window] = []
        self._embeddings: list[np.ndarray[Any, Any]] = []
        self._runs: list[np.ndarray[Any, Any]] = []
        self._run_embeddings: list[np.ndarray[Any, Any]] = []

    @property
    def received_samples(self) -> int:
        return self._received

    @property
    def buffered_samples(self) -> int:
        """Audio held for windows not yet analysed."""
        return self._buffer.size

    @property
    def analysed_samples(self) -> int:
        """Audio whose windows are embedded for the final clustering."""
        return self._covered(len(self._embeddings))

    def _covered(self, windows: int) -> int:
        if not windows:
            return 0
        return min(self._received, (windows - 1) * self._step + WINDOW_SAMPLES)

    def go_live(
        self, latency: float, max_speakers: int | None = None, embedder: Embedder | None = None
    ) -> None:
        """Track speakers as windows are analysed, for provisional turns (`live_turns`).

        `embedder` embeds the windows for the tracker alone, sooner than the stream's own
        embedder does (None: the tracker takes the stored embeddings as they come)."""
        frames = self._segmentation.receptive_field
        self._live = OnlineDiarizer(
            frames.step, frames.duration / 2, latency, max_speakers, self._settings.run_margin
        )
        self._live_embedder = embedder

    def live_turns(self) -> ProvisionalTurns:
        """Provisional turns found since the last call, and up to where turns were given."""
        return self._live.take() if self._live is not None else ProvisionalTurns()

    def push(self, samples: Samples) -> None:
        with self._lock:
            self._buffer = np.concatenate([self._buffer, samples])
            self._received += samples.size

    def run(self, final: bool, stop: threading.Event) -> Iterator[int]:
        """Analyse every window whose audio is complete (all of them when final)."""
        while not stop.is_set():
            starts = self._ready_windows(final)
            if starts:
                self._segment(starts)
            embedded = self._embedder.embed(self._pending, self._read, self._received, final)
            for vectors in embedded:
                self._keep(vectors)
            self._pending = self._pending[len(embedded) :]
            tracked = self._track(final) if self._live_embedder else embedded
            self._trim()
            if not starts and not embedded and not tracked:
                if final and self._live:
                    self._live.emit(self._received / SAMPLE_RATE, final=True)
                return
            if self._live and tracked:
                self._live.emit(self._covered(self._tracked) / SAMPLE_RATE)
            yield self.analysed_samples

    def _keep(self, vectors: np.ndarray[Any, Any]) -> None:
        """One window's embeddings: its local speakers' and its speech runs'."""
        index = len(self._embeddings)
        activity = self._segmentations[index]
        speakers = activity.shape[1]
        self._embeddings.append(vectors[:speakers])
        self._run_embeddings.append(vectors[speakers:])
        if self._live and not self._live_embedder:
            self._to_tracker(index, vectors)

    def _track(self, final: bool) -> list[Any]:
        """The windows the live embedder has embedded since the last call, to the tracker."""
        assert self._live is not None and self._live_embedder is not None
        read, received = self._read, self._received
        done = self._live_embedder.embed(self._live_pending, read, received, final)
        for vectors in done:
            self._to_tracker(self._tracked, vectors)
        self._live_pending = self._live_pending[len(done) :]
        return done

    def _to_tracker(self, index: int, vectors: np.ndarray[Any, Any]) -> None:
        """Window `index`'s embeddings (its local speakers', then its runs') to the tracker."""
        assert self._live is not None
        activity = self._segmentations[index]
        speakers = activity.shape[1]
        start = index * self._step / SAMPLE_RATE
        self._live.add(start, activity, vectors[:speakers], self._runs[index], vectors[speakers:])
        self._tracked += 1

    def _ready_windows(self, final: bool) -> list[int]:
        """Starts of the next windows to segment, as pyannote's `Inference.slide` places them.

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
        first = len(self._segmentations)
        end = min(total, first + self._batch_size)
        return [k * step for k in range(first, end)]

    def _read(self, start: int, end: int) -> np.ndarray[Any, Any]:
        with self._lock:
            offset = self._buffer_start
            part = self._buffer[max(start - offset, 0) : max(end - offset, 0)]
        return np.pad(part, (0, end - start - part.size))

    def _trim(self) -> None:
        segmented = keep = len(self._segmentations) * self._step
        for pending, embedder in (
            (self._pending, self._embedder),
            (self._live_pending, self._live_embedder),
        ):
            if embedder is not None:
                next_window = pending[0].start if pending else segmented
                keep = min(keep, next_window, embedder.needed_from(next_window))
        with self._lock:
            drop = keep - self._buffer_start
            if drop > 0:
                self._buffer = self._buffer[drop:]
                self._buffer_start += drop

    @torch.inference_mode()
    def _segment(self, starts: list[int]) -> None:
        device = next(self._segmentation.parameters()).device
        batch = torch.from_numpy(np.stack([self._read(s, s + WINDOW_SAMPLES) for s in starts]))
        scores = self._segmentation(batch[:, None].to(device))
        activity = self._powerset.to_multilabel(scores).cpu().numpy().astype(np.uint8)
        for start, frames in zip(starts, activity, strict=True):
            split = runs.split(frames, frames.shape[0] * SAMPLE_RATE / WINDOW_SAMPLES)
            self._segmentations.append(frames)
            self._runs.append(split)
            both = np.concatenate([frames, runs.masks(frames, split)], axis=1)
            self._pending.append(Window(start, both))
            if self._live_embedder:
                self._live_pending.append(Window(start, both))

    def finish(
        self,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        settings: ClusteringSettings | None = None,
    ) -> DiarizationResult:
        """Cluster the per-window embeddings and rebuild speaker turns.

        `settings` overrides the clustering settings (tuning reuses one analysis).
        """
        mixin = SpeakerDiarizationMixin
        duration = self._received / SAMPLE_RATE
        if not self._segmentations:
            return DiarizationResult(Annotation(), Annotation(), {})
        window = SlidingWindow(start=0.0, duration=10.0, step=self._step / SAMPLE_RATE)
        segmentations = SlidingWindowFeature(
            np.stack(self._segmentations).astype(np.float32), window
        )
        embeddings = np.stack(self._embeddings)
        num, low, high = mixin.set_num_speakers(num_speakers, min_speakers, max_speakers)
        frames = self._segmentation.receptive_field
        count = mixin.speaker_count(segmentations, frames, warm_up=(0.0, 0.0))
        if np.nanmax(count.data) == 0:
            return DiarizationResult(Annotation(), Annotation(), {})
        clustering = BoundedClustering(metric="cosine")
        settings = settings or self._settings
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
        moves = runs.reassign(
            hard, self._runs, self._run_embeddings, centroids, settings.run_margin
        )
        summed = reconstruct.activations(segmentations, hard, moves, count.sliding_window)
        turns = self._annotate(summed, count)
        count.data = np.minimum(count.data, 1).astype(np.int8)
        exclusive = self._annotate(summed, count)
        mapping = {label: f"SPEAKER_{i:02d}" for i, label in enumerate(turns.labels())}
        extent = Segment(0, duration)
        turns = turns.rename_labels(mapping).crop(extent)
        exclusive = exclusive.rename_labels(mapping).crop(extent)
        named = {
            mapping[k]: centroids[k] for k in mapping if isinstance(k, int) and k < len(centroids)
        }
        return DiarizationResult(turns, exclusive, named)

    def _annotate(self, summed: SlidingWindowFeature, count: Any) -> Annotation:
        discrete = reconstruct.discrete(summed, count)
        annotation: Annotation = SpeakerDiarizationMixin.to_annotation(
            discrete, min_duration_on=0.0, min_duration_off=self._settings.min_duration_off
        )
        return annotation
