"""Agglomerative clustering whose memory does not grow with the square of the recording.

pyannote clusters every active (window, speaker) embedding at once: scipy's
linkage holds the condensed distance matrix, N²/2 doubles. With 10 s windows every
second a speaker-heavy hour gives about 5,000 embeddings (100 MB); four hours about
20,000 (1.6 GB, and linkage's work on top). Here at most `MAX_CLUSTERED`
embeddings, taken evenly across the recording (every k-th in time order, so the
choice depends on the audio alone), are clustered; the centroids of the clusters
then take every embedding, the left-out ones included, by nearest distance, as
pyannote already does for embeddings it does not cluster. The minimum cluster
size shrinks by the same factor, so a cluster still needs as much speech.
Recordings under the bound (about 45 minutes of a two-party meeting) are
clustered exactly as before.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pyannote.audio.pipelines.clustering import AgglomerativeClustering
from pyannote.core import SlidingWindowFeature

MAX_CLUSTERED = 4000
"""Most embeddings clustered at once: 64 MB of distances."""


class BoundedClustering(AgglomerativeClustering):
    """`AgglomerativeClustering` on an even subsample of at most `max_clustered` embeddings."""

    def __init__(self, metric: str = "cosine", max_clustered: int = MAX_CLUSTERED) -> None:
        super().__init__(metric=metric)
        self.max_clustered = max_clustered
        self.stride = 1
        """Every how many active embeddings one was clustered, in the last call."""

    def filter_embeddings(
        self,
        embeddings: np.ndarray[Any, Any],
        segmentations: SlidingWindowFeature | None = None,
        min_active_ratio: float = 0.2,
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        found, chunks, speakers = super().filter_embeddings(
            embeddings, segmentations, min_active_ratio
        )
        self.stride = max(1, math.ceil(len(found) / self.max_clustered))
        step = slice(None, None, self.stride)
        return found[step], chunks[step], speakers[step]

    def cluster(
        self,
        embeddings: np.ndarray[Any, Any],
        min_clusters: int | None = None,
        max_clusters: int | None = None,
        num_clusters: int | None = None,
    ) -> np.ndarray[Any, Any]:
        full = self.min_cluster_size
        self.min_cluster_size = max(1, math.ceil(full / self.stride))
        try:
            clusters: np.ndarray[Any, Any] = super().cluster(
                embeddings, min_clusters, max_clusters, num_clusters
            )
        finally:
            self.min_cluster_size = full
        return clusters
