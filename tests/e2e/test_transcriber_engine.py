"""The faster-whisper engine with the real embedded models on real speech.

Accuracy is scored with jiwer on normalised text against the references that ship
with pyannote.audio (sample.stm) and Debian's Asterisk prompts; the incremental
session is compared with faster-whisper transcribing the whole file at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from transcriber.config import CPU_BATCH_SIZE, ModelConfig
from transcriber.engine import FasterWhisperEngine
from transcriber.session import WhisperSession
from transcriber.windows import batch_span
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.common.errors import InvalidArgument
from whospoke.contract.transcription import Segment, TranscriptionOptions
from whospoke.evaluation import (
    asterisk_available,
    asterisk_recording,
    sample_transcript,
    sample_turns,
    word_error_rate,
)

pytestmark = pytest.mark.models


# In process (`model_process="off"`): the whole-file reference is faster-whisper on the
# engine's own model; tests/e2e/test_model_process.py shows the child decodes the same.
@pytest.fixture(scope="module")
def tiny() -> FasterWhisperEngine:
    engine = FasterWhisperEngine(ModelConfig(model="tiny.en", cpu_threads=2, model_process="off"))
    engine.load()
    return engine


@pytest.fixture(scope="module")
def base() -> FasterWhisperEngine:
    engine = FasterWhisperEngine(ModelConfig(model="base", cpu_threads=2, model_process="off"))
    engine.load()
    return engine


def stream(
    session: WhisperSession, audio: Samples, chunk_seconds: float = 1.0
) -> Iterator[tuple[float, Segment]]:
    """Feed audio chunk by chunk, transcribing after each; yield (audio sent, segment).

    Warnings and progress markers the session yields between segments are skipped.
    """
    step = int(chunk_seconds * SAMPLE_RATE)
    stop = threading.Event()
    for start in range(0, audio.size, step):
        session.push(audio[start : start + step])
        sent = min(audio.size, start + step) / SAMPLE_RATE
        for item in session.run(False, stop):
            if isinstance(item, Segment):
                yield sent, item
        # A file's plan analyses a full batch (the engine's CPU default) and the
        # region still open after it; live streams one 60 s span.
        assert session.buffered_seconds <= batch_span(CPU_BATCH_SIZE) / SAMPLE_RATE + 1
    for item in session.run(True, stop):
        if isinstance(item, Segment):
            yield audio.size / SAMPLE_RATE, item


def whole_file_text(engine: FasterWhisperEngine, audio: Samples, language: str | None) -> str:
    segments, _ = engine.model.transcribe(audio, language=language, vad_filter=True)
    return "".join(s.text for s in segments)


def streamed_text(engine: FasterWhisperEngine, audio: Samples, language: str | None) -> str:
    session = engine.open_session(TranscriptionOptions(language=language))
    return "".join(segment.text for _, segment in stream(session, audio))


@pytest.mark.parametrize("model", ["tiny", "base"])
def test_sample_wer_matches_whole_file(
    model: str, request: pytest.FixtureRequest, sample_audio: Samples
) -> None:
    engine: FasterWhisperEngine = request.getfixturevalue(model)
    reference = sample_transcript()
    streamed = word_error_rate(reference, streamed_text(engine, sample_audio, None))
    whole = word_error_rate(reference, whole_file_text(engine, sample_audio, None))
    # Measured streamed / whole: tiny.en 0.115 / 0.149, base 0.195 / 0.195 (AMD EPYC); the
    # sample has about 80 words, so 0.03 is two words of margin over whole-file.
    assert streamed <= 0.25
    assert streamed <= whole + 0.03


def test_words_fall_inside_reference_turns(
    tiny: FasterWhisperEngine, sample_audio: Samples
) -> None:
    session = tiny.open_session(TranscriptionOptions())
    words = [w for _, segment in stream(session, sample_audio) for w in segment.words]
    assert len(words) >= 60
    turns = sample_turns()
    inside = [
        any(start - 0.5 <= (w.start + w.end) / 2 <= end + 0.5 for start, end, _ in turns)
        for w in words
    ]
    assert sum(inside) / len(words) >= 0.9
    assert all(w.start <= w.end for w in words)
    assert all(0.0 <= w.probability <= 1.0 for w in words)


def test_timestamps_are_absolute(tiny: FasterWhisperEngine, sample_audio: Samples) -> None:
    silence = np.zeros(20 * SAMPLE_RATE, dtype=np.float32)
    # Live planning drops the leading silence and decodes from the first utterance, so
    # both streams decode the same piece; only the offset added to its times differs.
    plain = tiny.open_session(TranscriptionOptions(live=True))
    shifted = tiny.open_session(TranscriptionOptions(live=True))
    first = next(s for _, s in stream(plain, sample_audio))
    later = next(s for _, s in stream(shifted, np.concatenate([silence, sample_audio])))
    assert later.start == pytest.approx(first.start + 20, abs=0.5)
    assert later.index == 0


def test_first_segment_arrives_long_before_the_end(tiny: FasterWhisperEngine) -> None:
    if not asterisk_available("en"):
        pytest.skip("Debian asterisk-core-sounds-en(-wav) not installed")
    recording = asterisk_recording("en", count=16)
    session = tiny.open_session(TranscriptionOptions(language="en", live=True))
    results = list(stream(session, recording.audio))
    duration = recording.audio.size / SAMPLE_RATE
    assert duration > 120
    assert results[0][0] < 15
    assert sum(1 for sent, _ in results if sent < duration) > len(results) // 2
    assert [s.index for _, s in results] == list(range(len(results)))
    assert word_error_rate(recording.transcript, "".join(s.text for _, s in results)) < 0.2


@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_asterisk_wer_matches_whole_file(base: FasterWhisperEngine, language: str) -> None:
    if not asterisk_available(language):
        pytest.skip(f"Debian asterisk-core-sounds-{language}(-wav) not installed")
    recording = asterisk_recording(language, count=16)
    streamed = word_error_rate(recording.transcript, streamed_text(base, recording.audio, language))
    whole = word_error_rate(recording.transcript, whole_file_text(base, recording.audio, language))
    # Measured streamed - whole: en 0.000, fr +0.016, es -0.003 (AMD EPYC, AVX2); fr +0.003 on
    # Intel Xeon (AVX-512). int8 kernels move a word or two between CPUs; 0.05 (about five words
    # of these recordings) still fails on the regressions this guards (context carried between
    # pieces, the wrong language: +0.08 and more).
    assert streamed <= whole + 0.05, (streamed, whole)


def test_language_is_detected(base: FasterWhisperEngine, sample_audio: Samples) -> None:
    session = base.open_session(TranscriptionOptions())
    list(stream(session, sample_audio))
    language, probability = session.language
    assert language == "en" and probability > 0.5


def test_validation_names_the_field(tiny: FasterWhisperEngine, base: FasterWhisperEngine) -> None:
    with pytest.raises(InvalidArgument, match=r"config\.language: unknown"):
        base.validate(TranscriptionOptions(language="xx"))
    with pytest.raises(InvalidArgument, match=r"config\.task: .* English-only"):
        tiny.validate(TranscriptionOptions(task="translate"))
    with pytest.raises(InvalidArgument, match=r"config\.language"):
        tiny.validate(TranscriptionOptions(language="fr"))
    base.validate(TranscriptionOptions(language="fr", task="translate"))
    assert tiny.info().languages == ("en",) and not tiny.info().multilingual
    assert "fr" in base.info().languages and base.info().compute_type == "int8"


class Searches:
    """CTranslate2's Whisper model, counting the beam searches asked of it."""

    def __init__(self, model: Any) -> None:
        self._model, self.count = model, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return self._model.generate(*args, **kwargs)


class Spy:
    """A Whisper model whose encoder sets `stop`: a cancel arriving mid-encode."""

    def __init__(self, model: Any, stop: threading.Event) -> None:
        self._model, self._stop = model, stop
        self.model = Searches(model.model)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, features: Any) -> Any:
        self._stop.set()
        return self._model.encode(features)


def test_cancel_during_a_batch_skips_its_beam_search(
    tiny: FasterWhisperEngine, sample_audio: Samples
) -> None:
    """The batched pass checks the stop between its stages: a cancel during the
    encoder returns before the (longest) beam-search stage starts."""
    stop = threading.Event()
    spy = Spy(tiny.model, stop)
    session = WhisperSession(spy, TranscriptionOptions(language="en"), batch_size=4)
    session.push(np.tile(sample_audio, 4))
    items = list(session.run(True, stop))
    assert stop.is_set() and spy.model.count == 0
    assert not [item for item in items if isinstance(item, Segment)]
