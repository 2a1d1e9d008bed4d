"""The incremental diarizer against pyannote's whole-file pipeline on real speech."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from pyannote.audio import Model
from pyannote.core import Annotation, Segment, Timeline

from diarizer.baseline import diarize_whole, stock_pipeline
from diarizer.incremental import DiarizationResult, IncrementalDiarizer
from diarizer.models import CamPlusPlus, load_segmentation
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.evaluation import sample_dir

pytestmark = pytest.mark.models

Models = tuple[Model, CamPlusPlus]


@pytest.fixture(scope="module")
def models() -> Models:
    return load_segmentation(), CamPlusPlus()


def diarize(models: Models, audio: Samples, chunk: float = 1.0) -> DiarizationResult:
    diarizer = IncrementalDiarizer(models[0], models[1])
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


def test_matches_the_whole_file_pipeline(models: Models, sample_audio: Samples) -> None:
    from pyannote.database.util import load_rttm

    reference = load_rttm(str(sample_dir() / "sample.rttm"))["sample"]  # type: ignore[no-untyped-call]
    duration = sample_audio.size / SAMPLE_RATE
    result = diarize(models, sample_audio)
    stock = diarize_whole(stock_pipeline(), sample_audio).speaker_diarization
    incremental_der = der(reference, result.turns, duration)
    assert incremental_der <= der(reference, stock, duration) + 0.005
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
