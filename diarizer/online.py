"""Online diarization: provisional speaker turns while a stream is still arriving.

The offline clustering needs every window's embeddings, so it runs once, at the
end. A live stream also wants to know who is speaking now. As each 10 s window is
analysed, its local speakers are matched to speakers tracked so far (centroid
tracking, as diart does): the closest centroid by cosine distance, one local
speaker per tracked speaker, best pairs first. A local speaker active long enough
(`MIN_UPDATE_SECONDS`) and farther than `threshold` from every centroid starts a
new speaker; one that matched moves its centroid. Labels never change once given:
a tracked speaker keeps its label for the whole stream. As the offline clustering
does (`diarizer.runs`), a local speaker whose activity falls into runs apart is
also embedded run by run, and a run much closer to another tracked speaker goes
to that one: segmentation-3.0 often keeps two voices taking turns with a short pause
in one local speaker, whose embedding is mostly one of them.

Turns are rebuilt as the offline path does: each frame takes the mean activity of
every analysed window that covers it, and the mean local speaker count decides how
many speakers it has; the most active one alone makes the exclusive turns, which
words are attributed by (sending one speaker at a time alone left overlapping speech
out: +2 pt of missed speech on the dev meeting and sample.wav's DER 14.9 % instead
of 10.6 %). A frame is emitted once the audio `latency` seconds past it
has been analysed (a live stream's windows are analysed within a second of
their audio arriving: `PooledEmbedder` with 1 s blocks), and never
again: the final result, from the offline clustering, replaces all of them.

`bench/live_diarization_bench.py` (BENCHMARKS.md "Live diarization") scores them. The
threshold: 0.5 split the conversation's two voices into three speakers, 0.7 and 0.8
merged meeting speakers (12 and 9 of the meeting's 21, against 15 at 0.6, and a higher
DER), and 0.6 kept both voices apart with the lowest meeting DER.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diarizer import runs
from diarizer.runs import cosine
from whospoke.contract.diarization import ProvisionalTurns, Turn

Array = np.ndarray[Any, Any]

THRESHOLD = 0.6
"""Cosine distance beyond which a long-enough local speaker starts a new speaker."""
MIN_UPDATE_SECONDS = 1.0
"""Speech a local speaker needs in a window to start a speaker or move its centroid."""


@dataclass
class CentroidTracker:
    """The speakers seen so far, as sums of unit embeddings."""

    threshold: float = THRESHOLD
    min_update_frames: int = 59
    max_speakers: int | None = None
    sums: list[Array] = field(default_factory=list)

    def assign(self, activity: Array, embeddings: Array) -> Array:
        """(frames, local) activity and (local, dim) embeddings → (local,) speaker indices
        (-1: inactive or not assignable)."""
        local = activity.shape[1]
        labels = np.full(local, -1)
        speech = activity.sum(axis=0)
        active = [s for s in range(local) if speech[s] > 0 and np.all(np.isfinite(embeddings[s]))]
        if not active:
            return labels
        vectors = embeddings[active] / np.linalg.norm(embeddings[active], axis=1, keepdims=True)
        distance = (
            1.0 - cosine(vectors, np.stack(self.sums)) if self.sums else np.zeros((len(active), 0))
        )
        pairs = sorted(
            (distance[i, k], i, k) for i in range(len(active)) for k in range(distance.shape[1])
        )
        taken: set[int] = set()
        for d, i, k in pairs:
            if labels[active[i]] >= 0 or k in taken:
                continue
            if d > self.threshold and self._may_open(speech[active[i]]):
                continue
            labels[active[i]] = k
            taken.add(k)
        for i, s in enumerate(active):
            if labels[s] < 0 and self._may_open(speech[s]):
                self.sums.append(vectors[i].copy())
                labels[s] = len(self.sums) - 1
            elif labels[s] >= 0 and speech[s] >= self.min_update_frames:
                self.sums[labels[s]] += vectors[i]
        return labels

    def centroids(self) -> Array:
        """(speakers, dim) the tracked speakers' mean directions."""
        return np.stack(self.sums) if self.sums else np.zeros((0, 0))

    def _may_open(self, frames: float) -> bool:
        room = self.max_speakers is None or len(self.sums) < self.max_speakers
        return room and frames >= self.min_update_frames


class LiveTurns:
    """Frame-level aggregation of labelled windows, emitted once `latency` has passed."""

    def __init__(self, frame_step: float, frame_offset: float, latency: float) -> None:
        self._step = frame_step
        self._offset = frame_offset
        self._latency = latency
        self._first = 0
        """Global index of the first frame not emitted."""
        self._activity = np.zeros((0, 0))
        self._count = np.zeros(0)
        self._covered = np.zeros(0)

    @property
    def emitted_seconds(self) -> float:
        """Where the emitted frames end."""
        return max(self._offset + self._first * self._step, 0.0) if self._first else 0.0

    def add(self, start: float, activity: Array, labels: Array) -> None:
        """A window starting at `start` seconds, with its local speakers' labels."""
        first = round(start / self._step)
        end = first + activity.shape[0]
        if end <= self._first:
            return
        speakers = max(int(labels.max()) + 1, self._activity.shape[1])
        self._grow(end - self._first, speakers)
        low = max(first, self._first)
        part = activity[low - first :]
        rows = slice(low - self._first, end - self._first)
        for s, k in enumerate(labels):
            if k >= 0:
                self._activity[rows, k] += part[:, s]
        self._count[rows] += part.sum(axis=1)
        self._covered[rows] += 1

    def emit(self, analysed: float, final: bool = False) -> tuple[list[Turn], list[Turn]]:
        """Turns up to `analysed - latency` seconds (everything when final): who speaks,
        overlaps included, and one speaker at a time.

        As offline (`diarizer.reconstruct.discrete`), a frame has as many speakers as the
        mean local speaker count of its windows, rounded (at least one from 0.5), taken
        in order of mean activity; the exclusive turns keep the most active one."""
        until = (
            self._first + len(self._covered)
            if final
            else round((analysed - self._latency) / self._step)
        )
        n = min(max(until - self._first, 0), len(self._covered))
        if n == 0 and not final:
            return [], []
        covered = np.maximum(self._covered[:n], 1)
        mean = self._activity[:n] / covered[:, None]
        count = self._count[:n] / covered
        speakers = np.where(count >= 0.5, np.maximum(np.rint(count), 1), 0)
        rank = np.argsort(np.argsort(-mean, axis=1, kind="stable"), axis=1, kind="stable")
        active = (rank < speakers[:, None]) & (mean > 0)
        exclusive = active & (rank == 0)
        turns, alone = self._turns(active), self._turns(exclusive)
        self._first += n
        self._activity = self._activity[n:]
        self._count = self._count[n:]
        self._covered = self._covered[n:]
        return turns, alone

    def _turns(self, speaking: Array) -> list[Turn]:
        """The turns of every speaker in these (frames, speakers) flags, in time order."""
        turns = (t for k in range(speaking.shape[1]) for t in self._runs(speaking[:, k], k))
        return sorted(turns, key=lambda t: (t.start, t.speaker))

    def _runs(self, speaking: Array, speaker: int) -> list[Turn]:
        """The turns of `speaker` in these frames (the last one ends with them: the next
        call may go on with the same speaker)."""
        edges = np.flatnonzero(np.diff(np.concatenate([[0], speaking.astype(np.int8), [0]])))
        return [
            Turn(
                float(self._offset + (self._first + low) * self._step),
                float(self._offset + (self._first + high) * self._step),
                f"SPEAKER_{speaker:02d}",
            )
            for low, high in zip(edges[::2], edges[1::2], strict=True)
        ]

    def _grow(self, frames: int, speakers: int) -> None:
        extra = max(frames - len(self._covered), 0)
        self._activity = np.pad(
            self._activity, ((0, extra), (0, speakers - self._activity.shape[1]))
        )
        self._count = np.pad(self._count, (0, extra))
        self._covered = np.pad(self._covered, (0, extra))


class OnlineDiarizer:
    """Tracks speakers window by window and collects the provisional turns to send."""

    def __init__(
        self,
        frame_step: float,
        frame_offset: float,
        latency: float,
        max_speakers: int | None = None,
        run_margin: float = 2.0,
    ) -> None:
        self._run_margin = run_margin
        self._tracker = CentroidTracker(
            min_update_frames=round(MIN_UPDATE_SECONDS / frame_step), max_speakers=max_speakers
        )
        self._turns = LiveTurns(frame_step, frame_offset, latency)
        self._lock = threading.Lock()
        self._ready: list[Turn] = []
        self._ready_exclusive: list[Turn] = []
        self._emitted = 0.0

    def add(
        self,
        start: float,
        activity: Array,
        embeddings: Array,
        speech_runs: Array | None = None,
        run_embeddings: Array | None = None,
    ) -> None:
        """One analysed window (in stream order): its start (seconds), local activity and
        embeddings, and its speech runs (`diarizer.runs.split`) with theirs, if any."""
        labels = self._tracker.assign(activity, embeddings)
        if speech_runs is not None and run_embeddings is not None and len(speech_runs):
            activity, labels = self._moved(activity, labels, speech_runs, run_embeddings)
        self._turns.add(start, activity, labels)

    def _moved(
        self, activity: Array, labels: Array, speech_runs: Array, run_embeddings: Array
    ) -> tuple[Array, Array]:
        """The window with each speech run that is closer to another tracked speaker than
        to its local speaker's (by `run_margin`, the offline clustering's: 2 or more never
        moves one) given to that one, as `diarizer.runs.reassign` does offline: one local
        speaker often carries two voices taking turns with a short pause."""
        centroids = self._tracker.centroids()
        moves = runs.reassign(
            labels[None, :], [speech_runs], [run_embeddings], centroids, self._run_margin
        )
        if 0 not in moves:
            return activity, labels
        return moves[0].apply(activity, labels)

    def emit(self, analysed: float, final: bool = False) -> None:
        turns, exclusive = self._turns.emit(analysed, final)
        with self._lock:
            self._ready += turns
            self._ready_exclusive += exclusive
            self._emitted = self._turns.emitted_seconds

    def take(self) -> ProvisionalTurns:
        """The turns emitted since the last call, and up to where (seconds) turns are known."""
        with self._lock:
            turns, exclusive = tuple(self._ready), tuple(self._ready_exclusive)
            self._ready, self._ready_exclusive = [], []
            return ProvisionalTurns(turns, exclusive, self._emitted)
