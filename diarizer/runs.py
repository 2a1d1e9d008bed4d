"""Speech runs: a window's local speaker split where it pauses, each run checked after clustering.

segmentation-3.0 sometimes keeps one local speaker through a change of voice when two
people speak in turn with a short pause between them. In the Asterisk conversation (two
voices taking turns 0.6 s apart) June's 2-3 s replies between two of Allison's prompts were
often the same local speaker as Allison within a window; that local speaker's embedding is
mostly Allison's, so clustering gave those replies to Allison (22.6 % of June's speech).

Here a local speaker whose activity in a window falls into two or more runs separated by
at least `PAUSE_SECONDS` of silence is also embedded run by run (a run shorter than
`MIN_RUN_SECONDS` stays with its neighbour: too little speech for a reliable embedding).
Clustering still uses the whole local speakers' embeddings. Afterwards, a run moves to
another speaker when its embedding is closer to that speaker's centroid than to its own
by more than a margin of cosine similarity. Runs of one voice stay put: their embeddings
are closest to their own centroid anyway, so recordings without such turns are
diarized as before. The margin was chosen with the dev sets (README "Diarization").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PAUSE_SECONDS = 0.5
MIN_RUN_SECONDS = 1.0

Array = np.ndarray[Any, Any]


def split(activity: Array, frames_per_second: float) -> Array:
    """(k, 3) int32 rows (local speaker, first frame, end frame): the runs of every local
    speaker that has two or more of them; empty when none has."""
    pause = round(PAUSE_SECONDS * frames_per_second)
    shortest = round(MIN_RUN_SECONDS * frames_per_second)
    found: list[tuple[int, int, int]] = []
    for speaker in range(activity.shape[1]):
        active = np.flatnonzero(activity[:, speaker])
        if active.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(active) > pause)
        starts = [int(active[0]), *(int(active[b + 1]) for b in breaks)]
        ends = [*(int(active[b]) + 1 for b in breaks), int(active[-1]) + 1]
        runs: list[list[int]] = []
        for start, end in zip(starts, ends, strict=True):
            if runs and (end - start < shortest or runs[-1][1] - runs[-1][0] < shortest):
                runs[-1][1] = end
            else:
                runs.append([start, end])
        if len(runs) > 1:
            found += [(speaker, start, end) for start, end in runs]
    return np.array(found, dtype=np.int32).reshape(-1, 3)


def masks(activity: Array, runs: Array) -> Array:
    """(frames, k) activity of each run: its local speaker's, inside the run only."""
    out = np.zeros((activity.shape[0], len(runs)), dtype=activity.dtype)
    for column, (speaker, start, end) in enumerate(runs):
        out[start:end, column] = activity[start:end, speaker]
    return out


@dataclass(frozen=True)
class Moves:
    """The runs of one window that go to another speaker than their local speaker's."""

    runs: Array
    """(m, 3) rows as from `split`."""
    clusters: Array
    """(m,) the cluster each run goes to."""

    def apply(self, activity: Array, clusters: Array) -> tuple[Array, Array]:
        """The window's (frames, speakers) activity and per-speaker clusters, with each
        moved run taken from its local speaker into a column of its own."""
        activity = np.concatenate(
            [activity, np.zeros_like(activity[:, :1]).repeat(len(self.runs), 1)], axis=1
        )
        width = len(clusters)
        for column, (speaker, start, end) in enumerate(self.runs):
            activity[start:end, width + column] = activity[start:end, speaker]
            activity[start:end, speaker] = 0
        return activity, np.concatenate([clusters, self.clusters])


def cosine(a: Array, b: Array) -> Array:
    """(n, d) and (k, d) → (n, k) cosine similarities."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.asarray(a @ b.T, dtype=np.float64)


def reassign(
    hard: Array,
    runs: list[Array],
    embeddings: list[Array],
    centroids: Array,
    margin: float,
) -> dict[int, Moves]:
    """Window index → its runs that are closer to another centroid by more than `margin`.

    `hard` is the (windows, local speakers) clustering (negative: none); `runs` and
    `embeddings` are each window's runs and their embeddings.
    """
    moved: dict[int, Moves] = {}
    if not len(centroids):
        return moved
    for window, (rows, vectors) in enumerate(zip(runs, embeddings, strict=True)):
        if not len(rows):
            continue
        own = hard[window, rows[:, 0]]
        usable = (own >= 0) & np.all(np.isfinite(vectors), axis=1)
        own = np.where(usable, own, 0)
        if not usable.any():
            continue
        similarity = cosine(np.nan_to_num(vectors), centroids)
        rows_index = np.arange(len(rows))
        best = np.argmax(similarity, axis=1)
        gain = similarity[rows_index, best] - similarity[rows_index, own]
        chosen = usable & (best != own) & (gain > margin)
        if chosen.any():
            moved[window] = Moves(rows[chosen], best[chosen])
    return moved
