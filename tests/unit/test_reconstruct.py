"""Turns from clustered windows: the same as pyannote's reconstruction, without its big array."""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin as Mixin
from pyannote.core import SlidingWindow, SlidingWindowFeature

from diarizer import reconstruct
from diarizer.runs import Moves

FRAMES = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)
"""segmentation-3.0's receptive field (589 frames per 10 s window)."""
PER_WINDOW = 589

Array = np.ndarray[Any, Any]


def pyannote_reconstruction(
    segmentations: SlidingWindowFeature, hard: Array, moves: dict[int, Moves], count: Any
) -> Array:
    """The (windows, frames, speakers) array pyannote's `reconstruct` builds, then its
    `to_diarization`: what `diarizer.reconstruct` replaces."""
    chunks, frames, _ = segmentations.data.shape
    speakers = max(int(np.max(hard)) + 1, 1)
    clustered = np.full((chunks, frames, speakers), np.nan, np.float32)
    for c, (_, activity) in enumerate(segmentations):
        clusters = hard[c]
        if c in moves:
            activity, clusters = moves[c].apply(activity, clusters)
        for k in np.unique(clusters):
            if k != -2:
                clustered[c, :, k] = np.max(activity[:, clusters == k], axis=1)
    window = segmentations.sliding_window
    result = Mixin.to_diarization(SlidingWindowFeature(clustered, window), count)
    return np.asarray(result.data)


def windows(seed: int, chunks: int, speakers: int) -> tuple[SlidingWindowFeature, Array]:
    """Random turn-taking activity of three local speakers per window, and a clustering."""
    rng = np.random.default_rng(seed)
    activity = np.zeros((chunks, PER_WINDOW, 3), np.float32)
    for c in range(chunks):
        for local in range(3):
            for _ in range(rng.integers(1, 6)):
                start = int(rng.integers(0, PER_WINDOW))
                activity[c, start : start + int(rng.integers(50, 300)), local] = 1
    hard = rng.integers(0, speakers, size=(chunks, 3))
    hard[activity.sum(axis=1) == 0] = -2
    return SlidingWindowFeature(activity, SlidingWindow(start=0.0, duration=10.0, step=1.0)), hard


@pytest.mark.parametrize(
    ("seed", "chunks", "speakers", "block"),
    [(1, 1, 2, 65536), (2, 40, 3, 65536), (3, 90, 6, 65536), (5, 90, 5, 1000)],
)
def test_the_turns_are_pyannotes(
    seed: int, chunks: int, speakers: int, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Block: frames ranked at a time; 1000 ranks 6,000 frames in several blocks."""
    monkeypatch.setattr(reconstruct, "BLOCK_FRAMES", block)
    segmentations, hard = windows(seed, chunks, speakers)
    moves = {
        c: Moves(np.array([[0, 100, 300]], np.int32), np.array([speakers - 1]))
        for c in range(0, chunks, 7)
    }
    count = Mixin.speaker_count(segmentations, FRAMES, warm_up=(0.0, 0.0))
    assert np.max(count.data) >= 2
    for most in (2, 1):
        count.data = np.minimum(count.data, most).astype(np.int8)
        summed = reconstruct.activations(segmentations, hard, moves, count.sliding_window)
        ours = reconstruct.discrete(summed, count)
        expected = pyannote_reconstruction(segmentations, hard, moves, count)
        assert ours.data.shape == expected.shape
        np.testing.assert_array_equal(ours.data, expected)
        assert ours.data.sum() > 0
        assert np.all(ours.data.sum(axis=1) <= most)


def test_memory_grows_with_frames_not_with_windows_times_frames() -> None:
    """An hour of windows: besides the per-frame sums, only one window at a time is held.

    pyannote's array for the same hour is 3600 x 589 x 4 float32 (34 MB), ten times the
    sums (3.4 MB): numpy's allocations are traced, so the peak shows which one was built."""
    segmentations, hard = windows(4, 3600, 4)
    tracemalloc.start()
    try:
        summed = reconstruct.activations(segmentations, hard, {}, FRAMES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summed.data.shape == (round(3609 / FRAMES.step) + 1, 4)
    assert peak < 1.5 * summed.data.nbytes
