"""The diarizer's embedded models load offline and separate the two voices of sample.wav."""

from __future__ import annotations

import pytest
import torch

from diarizer.baseline import diarize_whole, stock_pipeline
from diarizer.models import EMBEDDING_DIM, CamPlusPlus, load_segmentation
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.evaluation import sample_dir, sample_turns

pytestmark = pytest.mark.models


def test_segmentation_outputs_powerset_frames(sample_audio: Samples) -> None:
    model = load_segmentation()
    with torch.inference_mode():
        out = model(torch.from_numpy(sample_audio[: 10 * SAMPLE_RATE])[None, None])
    assert tuple(out.shape) == (1, 589, 7)


def test_campplus_embeddings_separate_the_speakers(sample_audio: Samples) -> None:
    model = CamPlusPlus()
    turns = [(s, e, who) for s, e, who in sample_turns() if e - s > 1.5]
    audio = torch.from_numpy(sample_audio)
    with torch.inference_mode():
        vectors = torch.cat(
            [
                model(audio[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)][None, None])
                for s, e, _ in turns
            ]
        )
    assert vectors.shape == (len(turns), EMBEDDING_DIM)
    vectors = vectors / vectors.norm(dim=1, keepdim=True)
    similarity = vectors @ vectors.T
    same: list[float] = []
    different: list[float] = []
    for i in range(len(turns)):
        for j in range(i + 1, len(turns)):
            (same if turns[i][2] == turns[j][2] else different).append(float(similarity[i, j]))
    assert sum(same) / len(same) > sum(different) / len(different) + 0.1


def test_stock_pipeline_finds_two_speakers_offline(sample_audio: Samples) -> None:
    from pyannote.core import Segment, Timeline
    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    output = diarize_whole(stock_pipeline(), sample_audio)
    reference = load_rttm(str(sample_dir() / "sample.rttm"))["sample"]  # type: ignore[no-untyped-call]
    hypothesis = output.speaker_diarization
    assert len(hypothesis.labels()) == 2
    uem = Timeline([Segment(0, sample_audio.size / SAMPLE_RATE)])
    der = DiarizationErrorRate(collar=0.0, skip_overlap=False)(reference, hypothesis, uem=uem)
    assert der < 0.10
