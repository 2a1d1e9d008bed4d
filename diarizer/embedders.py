"""Speaker embeddings of (window, local speaker) pairs, as the incremental diarizer needs them.

Two ways, same result shape (one 192-dim vector per local speaker, NaN when inactive):

- `PooledEmbedder` (embedded CAM++, the default): the network runs once over the
  stream, in 10 s blocks, up to its statistics pooling; each (window, speaker) pair
  then pools the frames where that speaker is active. Every audio frame goes through
  the network once instead of about ten times (10 s windows every 1 s).
- `WindowEmbedder` (any pyannote embedding model, such as a hub model): pyannote's
  own way, one forward pass per active (window, speaker) pair with the speaker's
  activity as weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from pyannote.audio import Model

from diarizer.models import FRAME_SAMPLES, CamPlusPlus
from whospoke.common.audio import SAMPLE_RATE

WINDOW_SAMPLES = 10 * SAMPLE_RATE
BLOCK_SAMPLES = 10 * SAMPLE_RATE
"""Audio the CAM++ features of a block are computed over (the block and its context)."""
WINDOW_FRAMES = WINDOW_SAMPLES // FRAME_SAMPLES
MIN_POOLED_FRAMES = 10
"""Fewest active frames (20 ms each) to pool a speaker from; with fewer, the whole window."""

Vectors = np.ndarray[Any, Any]
AudioReader = Callable[[int, int], np.ndarray[Any, Any]]
"""`read(start, end)`: the stream's samples in [start, end), zero-padded past what was received."""


@dataclass(frozen=True)
class Window:
    """A segmented window: where it starts (samples) and its (frames, speakers) 0/1 activity."""

    start: int
    activity: np.ndarray[Any, Any]


class Embedder(Protocol):
    @property
    def dimension(self) -> int: ...

    def embed(
        self, windows: Sequence[Window], read: AudioReader, received: int, final: bool
    ) -> list[Vectors]:
        """Embeddings of the first windows whose audio context is complete (all when final)."""
        ...

    def needed_from(self, next_window: int) -> int:
        """Earliest sample still needed, given the start of the first window not embedded."""
        ...


def active_speakers(activity: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.flatnonzero(activity.sum(axis=0) > 0)


class WindowEmbedder:
    def __init__(self, model: Model, batch_size: int = 8) -> None:
        self._model = model
        self._batch_size = batch_size

    @property
    def dimension(self) -> int:
        dimension: int = self._model.dimension  # type: ignore[assignment]
        return dimension

    def needed_from(self, next_window: int) -> int:
        return next_window

    @torch.inference_mode()
    def embed(
        self, windows: Sequence[Window], read: AudioReader, received: int, final: bool
    ) -> list[Vectors]:
        vectors = [np.full((w.activity.shape[1], self.dimension), np.nan) for w in windows]
        pairs = [(i, s) for i, w in enumerate(windows) for s in active_speakers(w.activity)]
        device = next(self._model.parameters()).device
        for first in range(0, len(pairs), self._batch_size):
            batch = pairs[first : first + self._batch_size]
            waveforms = torch.stack(
                [
                    torch.from_numpy(read(windows[i].start, windows[i].start + WINDOW_SAMPLES))
                    for i, _ in batch
                ]
            )[:, None]
            weights = torch.stack(
                [torch.from_numpy(windows[i].activity[:, s].astype(np.float32)) for i, s in batch]
            )
            out = self._model(waveforms.to(device), weights=weights.to(device)).cpu().numpy()
            for (i, s), vector in zip(batch, out, strict=True):
                vectors[i][s] = vector
        return vectors


class PooledEmbedder:
    """CAM++ frame features in blocks of `block_seconds` (a whole number of 20 ms frames).

    Each block's features are computed over 10 s of audio (the block and the audio before
    it), the span the network's mean normalisation sees in the default 10 s blocks. A live
    stream's speaker tracking uses 1 s blocks besides: a window is embedded within a second
    of its audio arriving, instead of waiting up to 10 s for its block, for about ten times
    the CAM++ work.
    """

    def __init__(
        self,
        model: CamPlusPlus,
        block_seconds: float = 10.0,
        network: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self._model = model
        self._network = network
        """Runs CAM++'s frame network instead of PyTorch (its ONNX export on the CPU)."""
        self._block = round(block_seconds * SAMPLE_RATE / FRAME_SAMPLES) * FRAME_SAMPLES
        self._block_frames = self._block // FRAME_SAMPLES
        self._blocks: dict[int, torch.Tensor] = {}
        self._next_block = 0

    @property
    def dimension(self) -> int:
        return self._model.dimension

    def needed_from(self, next_window: int) -> int:
        """The next block, and the 10 s before it: its context."""
        return max(0, self._next_block * self._block - BLOCK_SAMPLES)

    @torch.inference_mode()
    def embed(
        self, windows: Sequence[Window], read: AudioReader, received: int, final: bool
    ) -> list[Vectors]:
        self._compute_blocks(read, received, final)
        done: list[Vectors] = []
        frames_ready = self._next_block * self._block_frames
        for window in windows:
            first = round(window.start / FRAME_SAMPLES)
            if not final and first + WINDOW_FRAMES > frames_ready:
                break
            done.append(self._pool(window, first))
        if done:
            keep = round(windows[len(done) - 1].start / FRAME_SAMPLES) // self._block_frames
            for index in [j for j in self._blocks if j < keep]:
                del self._blocks[index]
        return done

    def _compute_blocks(self, read: AudioReader, received: int, final: bool) -> None:
        device = next(self._model.parameters()).device
        while True:
            start = self._next_block * self._block
            end = min(start + self._block, received)
            if end <= start or (end - start < self._block and not final):
                return
            missing = max(BLOCK_SAMPLES - (end - start), 0)
            context = min(start, -(-missing // FRAME_SAMPLES) * FRAME_SAMPLES)
            audio = torch.from_numpy(read(start - context, end))[None].to(device)
            frames = self._model.frame_features(audio, self._network)[:, context // FRAME_SAMPLES :]
            self._blocks[self._next_block] = frames
            self._next_block += 1

    def _pool(self, window: Window, first: int) -> Vectors:
        vectors = np.full((window.activity.shape[1], self.dimension), np.nan, dtype=np.float32)
        speakers = active_speakers(window.activity)
        if speakers.size == 0:
            return vectors
        frames = self._frames(first, first + WINDOW_FRAMES)
        activity = torch.from_numpy(window.activity[:, speakers].T.astype(np.float32))
        weights = F.interpolate(activity[None], size=WINDOW_FRAMES, mode="nearest")[0]
        weights = weights[:, : frames.shape[1]].to(frames.device)
        sparse = weights.sum(dim=1) < MIN_POOLED_FRAMES
        weights[sparse] = 1.0
        vectors[speakers] = self._model.pool(frames, weights).cpu().numpy()
        return vectors

    def _frames(self, first: int, end: int) -> torch.Tensor:
        """Frame features [first, end), clipped to the frames the stream has."""
        parts = []
        for index in range(first // self._block_frames, -(-end // self._block_frames)):
            block = self._blocks.get(index)
            if block is None:
                break
            offset = index * self._block_frames
            parts.append(block[:, max(first - offset, 0) : end - offset])
        return torch.cat(parts, dim=1)
