"""The incremental diarizer against pyannote's whole-file pipeline on real speech."""

from __future__ import annotations

import threading
from itertools import pairwise

import numpy as np
import pytest
from pyannote.audio import Model
from pyannote.core import Annotation, Segment, Timeline

from diarizer.baseline import STOCK_CLUSTERING, diarize_whole, stock_pipeline
from diarizer.embedders import PooledEmbedder, WindowEmbedder
from diarizer.engine import LIVE_BLOCK_SECONDS
from diarizer.incremental import DiarizationResult, IncrementalDiarizer
from diarizer.models import CamPlusPlus, load_segmentation
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.contract.diarization import Turn
from whospoke.evaluation import sample_dir

pytestmark = pytest.mark.models

Models = tuple[Model, CamPlusPlus]


@pytest.fixture(scope="module")
def models() -> Models:
    return load_segmentation(), CamPlusPlus()


def diarize(
    models: Models, audio: Samples, chunk: float = 1.0, pooled: bool = True
) -> DiarizationResult:
    if pooled:
        diarizer = IncrementalDiarizer(models[0], PooledEmbedder(models[1]))
    else:
        diarizer = IncrementalDiarizer(
            models[0], WindowEmbedder(models[1]), settings=STOCK_CLUSTERING
        )
    stop = threading.Event()
    step = int(chunk * SAMPLE_RATE)
    analysed = []
    for start in range(0, audio.size, step):
        diarizer.push(audio[start : start + step])
        analysed += list(diarizer.run(False, stop))
    list(diarizer.run(True, stop))
    if audio.size > 12 * SAMPLE_RATE:
        assert analysed, "windows must be analysed while audio is still arriving"
    return diarizer.finish()


def der(reference: Annotation, hypothesis: Annotation, duration: float) -> float:
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    return float(metric(reference, hypothesis, uem=Timeline([Segment(0, duration)])))


@pytest.fixture(scope="module")
def stock(sample_audio: Samples) -> Annotation:
    result: Annotation = diarize_whole(stock_pipeline(), sample_audio).speaker_diarization
    return result


def reference() -> Annotation:
    from pyannote.database.util import load_rttm

    annotation: Annotation = load_rttm(str(sample_dir() / "sample.rttm"))["sample"]  # type: ignore[no-untyped-call]
    return annotation


def test_per_window_embeddings_match_the_whole_file_pipeline(
    models: Models, sample_audio: Samples, stock: Annotation
) -> None:
    result = diarize(models, sample_audio, pooled=False)
    assert der(stock, result.turns, sample_audio.size / SAMPLE_RATE) < 0.001


def test_pooled_embeddings_are_as_accurate_as_the_whole_file_pipeline(
    models: Models, sample_audio: Samples, stock: Annotation
) -> None:
    duration = sample_audio.size / SAMPLE_RATE
    result = diarize(models, sample_audio)
    assert der(reference(), result.turns, duration) <= der(reference(), stock, duration) + 0.005
    assert sorted(result.turns.labels()) == ["SPEAKER_00", "SPEAKER_01"]
    assert set(result.centroids) == {"SPEAKER_00", "SPEAKER_01"}
    exclusive = result.exclusive
    assert not exclusive.get_overlap()
    assert exclusive.get_timeline().extent().end <= duration


def test_chunk_size_does_not_change_the_result(models: Models, sample_audio: Samples) -> None:
    one = diarize(models, sample_audio, 1.0).turns
    odd = diarize(models, sample_audio, 0.37).turns
    assert der(one, odd, sample_audio.size / SAMPLE_RATE) < 0.01


def test_short_and_silent_streams(models: Models, sample_audio: Samples) -> None:
    short = diarize(models, sample_audio[8 * SAMPLE_RATE : 12 * SAMPLE_RATE])
    assert short.turns.labels()
    assert short.turns.get_timeline().extent().end <= 4.0
    silent = diarize(models, np.zeros(15 * SAMPLE_RATE, dtype=np.float32))
    assert not silent.turns.labels()
    empty = diarize(models, np.zeros(0, dtype=np.float32))
    assert not empty.turns.labels()


def test_buffered_audio_stays_bounded(models: Models, sample_audio: Samples) -> None:
    audio = np.tile(sample_audio, 3)
    diarizer = IncrementalDiarizer(models[0], PooledEmbedder(models[1]))
    stop = threading.Event()
    buffered = []
    for start in range(0, audio.size, SAMPLE_RATE):
        diarizer.push(audio[start : start + SAMPLE_RATE])
        list(diarizer.run(False, stop))
        buffered.append(diarizer.buffered_samples)
    assert max(buffered) <= 21 * SAMPLE_RATE
    assert diarizer.analysed_samples >= audio.size - 12 * SAMPLE_RATE
    list(diarizer.run(True, stop))
    assert diarizer.analysed_samples == audio.size
    assert len(diarizer.finish().turns.labels()) == 2


def test_live_turns_follow_the_stream_within_their_latency(
    models: Models, sample_audio: Samples
) -> None:
    """Provisional turns (2 s latency) arrive while the audio does, at most a CAM++ block
    (1 s) later than the latency, each part of the stream once, and find both speakers;
    the bench measures their accuracy (BENCHMARKS.md "Live diarization"). The final turns
    are those of the same audio diarized without tracking: the tracker's 1 s-block
    embeddings never reach the final clustering."""
    diarizer = IncrementalDiarizer(models[0], PooledEmbedder(models[1]))
    diarizer.go_live(2.0, None, PooledEmbedder(models[1], LIVE_BLOCK_SECONDS))
    stop = threading.Event()
    turns: list[Turn] = []
    halfway = 0
    for start in range(0, sample_audio.size, SAMPLE_RATE):
        diarizer.push(sample_audio[start : start + SAMPLE_RATE])
        list(diarizer.run(False, stop))
        live = diarizer.live_turns()
        turns += live.exclusive_turns
        until = live.until
        received = diarizer.received_samples / SAMPLE_RATE
        if received >= 12:  # the first window is complete at 10 s
            assert until >= received - 2.0 - LIVE_BLOCK_SECONDS - 0.05
        if start < 15 * SAMPLE_RATE:
            halfway = len(turns)
    assert halfway, "turns must come while the audio is still arriving"
    duration = sample_audio.size / SAMPLE_RATE
    list(diarizer.run(True, stop))
    live = diarizer.live_turns()
    turns += live.exclusive_turns
    assert live.until == pytest.approx(duration, abs=0.1)
    assert all(b.start >= a.end - 1e-9 for a, b in pairwise(turns))
    provisional = Annotation()
    for turn in turns:
        provisional[Segment(turn.start, turn.end)] = turn.speaker
    assert len(provisional.labels()) == 2
    assert der(reference(), provisional.support(), duration) <= 0.25
    final, offline = diarizer.finish(), diarize(models, sample_audio)
    assert list(final.turns.itertracks(yield_label=True)) == list(
        offline.turns.itertracks(yield_label=True)
    )
