"""Speaker turns from clustered windows, in memory linear in the recording's frames.

pyannote's `SpeakerDiarization.reconstruct` first builds a (windows, frames per window,
speakers) array of each window's activity per global speaker, then overlap-adds it
into one row per frame (`Inference.aggregate`). With 10 s windows every 1 s each frame
is held ten times over: at 4 hours and 15 speakers that array alone is about 500 MB,
the largest allocation of a long file's diarization. Here each window is added into the
per-frame sums as it is read, so the peak is the (frames, speakers) sums themselves,
about 50 MB at 4 hours. The arithmetic is pyannote's (no Hamming window, no warm-up,
sums not averaged, the same frame placement), so the turns are identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyannote.core import SlidingWindow, SlidingWindowFeature

from diarizer.runs import Moves

Array = np.ndarray[Any, Any]

BLOCK_FRAMES = 65536
"""Frames ranked at a time (18 minutes): the ranking's int64 arrays stay a few MB."""


def activations(
    segmentations: SlidingWindowFeature,
    hard: Array,
    moves: dict[int, Moves],
    frames: SlidingWindow,
) -> SlidingWindowFeature:
    """(frames, speakers) sums of every window's activity of each global speaker.

    `hard` maps each window's local speakers to global ones (-2: inactive); `moves` takes
    speech runs to other speakers (`diarizer.runs`); `frames` is the output resolution.
    A window's activity of a speaker is the most active of its local speakers (and runs)
    given to that speaker, as in pyannote's `reconstruct`.
    """
    chunks = segmentations.sliding_window
    num_chunks, per_chunk, _ = segmentations.data.shape
    grid = SlidingWindow(start=chunks.start, duration=frames.duration, step=frames.step)
    end = chunks.start + chunks.duration + (num_chunks - 1) * chunks.step
    total = grid.closest_frame(end + 0.5 * grid.duration) + 1
    speakers = max(int(np.max(hard)) + 1, 1)
    sums = np.zeros((total, speakers), dtype=np.float32)
    for c, (chunk, activity) in enumerate(segmentations):
        clusters = hard[c]
        if c in moves:
            activity, clusters = moves[c].apply(activity, clusters)
        first = grid.closest_frame(chunk.start + 0.5 * grid.duration)
        for k in np.unique(clusters):
            if k == -2:
                continue
            sums[first : first + per_chunk, k] += np.max(activity[:, clusters == k], axis=1)
    return SlidingWindowFeature(sums, grid)


def discrete(
    activations: SlidingWindowFeature, count: SlidingWindowFeature
) -> SlidingWindowFeature:
    """Each frame's `count` most active speakers, as pyannote's `to_diarization` picks them.

    0/1 per (frame, speaker) over the frames `activations` and `count` share; the ranking
    is the same `argsort` pyannote loops over frame by frame, taken a block at a time."""
    scores = activations.data
    most = int(np.max(count.data))
    if scores.shape[1] < most:
        scores = np.pad(scores, ((0, 0), (0, most - scores.shape[1])))
    padded = SlidingWindowFeature(scores, activations.sliding_window)
    extent = padded.extent & count.extent
    cropped = padded.crop(extent, return_data=False)
    needed = np.zeros(len(cropped.data), dtype=np.int64)
    counts = count.crop(extent, return_data=True).reshape(-1)[: len(needed)]
    needed[: len(counts)] = counts
    binary = np.zeros_like(cropped.data)
    for first in range(0, len(binary), BLOCK_FRAMES):
        scores = cropped.data[first : first + BLOCK_FRAMES]
        order = np.argsort(-scores, axis=-1)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :], axis=-1)
        binary[first : first + len(scores)] = rank < needed[first : first + len(scores), None]
    return SlidingWindowFeature(binary, cropped.sliding_window)
