"""Clustering a long recording's embeddings on a bounded, even subsample.

Synthetic embeddings: one local speaker per 10 s window, voices taking turns in
stretches of windows, each voice a random unit direction plus noise. scipy's
linkage is watched to see how many embeddings it was given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pyannote.audio.pipelines import clustering as pyannote_clustering
from pyannote.audio.pipelines.clustering import AgglomerativeClustering
from pyannote.core import SlidingWindow, SlidingWindowFeature

from diarizer.clustering import BoundedClustering

Array = np.ndarray[Any, Any]


def recording(voices: list[int], seed: int = 0) -> tuple[Array, SlidingWindowFeature]:
    """(embeddings, segmentations) of one window per entry, spoken by that voice."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(max(voices) + 1, 32))
    embeddings = directions[voices] + rng.normal(scale=0.15, size=(len(voices), 32))
    frames = np.ones((len(voices), 20, 1), dtype=np.float32)
    window = SlidingWindow(start=0.0, duration=10.0, step=1.0)
    return embeddings[:, None, :], SlidingWindowFeature(frames, window)


def clustered(clustering: AgglomerativeClustering, voices: list[int]) -> Array:
    clustering.instantiate({"threshold": 0.5, "method": "average", "min_cluster_size": 12})
    embeddings, segmentations = recording(voices)
    hard, _, _ = clustering(embeddings=embeddings, segmentations=segmentations)
    return np.asarray(hard[:, 0])


@pytest.fixture
def linkage_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    original = pyannote_clustering.linkage  # type: ignore[attr-defined]

    def watched(y: Array, *args: Any, **kwargs: Any) -> Array:
        sizes.append(len(y))
        return np.asarray(original(y, *args, **kwargs))

    monkeypatch.setattr(pyannote_clustering, "linkage", watched)
    return sizes


def same_partition(found: Array, voices: list[int]) -> bool:
    pairs = set(zip(found.tolist(), voices, strict=True))
    return len(pairs) == len(set(voices)) == len(set(found.tolist()))


def test_a_long_recording_is_clustered_on_a_bounded_sample(linkage_sizes: list[int]) -> None:
    voices = [(i // 100) % 3 for i in range(3000)]
    clustering = BoundedClustering(max_clustered=500)
    found = clustered(clustering, voices)
    assert linkage_sizes == [500] and clustering.stride == 6
    assert same_partition(found, voices)  # every window, sampled or not, to its voice


def test_under_the_bound_nothing_changes(linkage_sizes: list[int]) -> None:
    voices = [(i // 40) % 4 for i in range(400)]
    bounded = clustered(BoundedClustering(max_clustered=500), voices)
    stock = clustered(AgglomerativeClustering(metric="cosine"), voices)
    assert linkage_sizes == [400, 400]
    assert np.array_equal(bounded, stock) and same_partition(bounded, voices)


def test_the_minimum_cluster_size_scales_with_the_sample() -> None:
    """A voice in 30 of 3,000 windows keeps its own speaker: 5 sampled embeddings
    against a minimum of 12 / 6 = 2, not 12 (which would fold it into another)."""
    voices = [(i // 100) % 2 for i in range(3000)]
    voices[1500:1530] = [2] * 30
    clustering = BoundedClustering(max_clustered=500)
    found = clustered(clustering, voices)
    assert same_partition(found, voices)
    assert clustering.min_cluster_size == 12
