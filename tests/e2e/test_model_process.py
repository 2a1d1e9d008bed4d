"""The model in a child process (transcriber/model_process.py) with the real tiny.en
model: the same text as in process, a cancel that kills the call in flight, and a
dead model process replaced by a fresh one."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
import pytest
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer

from transcriber.config import ModelConfig
from transcriber.engine import FasterWhisperEngine
from transcriber.model_process import ModelFiles, ModelPool, ModelProcessFailed, Stopped
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.common.models import resolve_whisper
from whospoke.contract.transcription import Segment, TranscriptionOptions

pytestmark = pytest.mark.models

SEARCH: dict[str, Any] = {"beam_size": 5, "return_scores": True, "return_no_speech_prob": True}


def tiny(model_process: str) -> FasterWhisperEngine:
    engine = FasterWhisperEngine(
        ModelConfig(model="tiny.en", cpu_threads=2, model_process=model_process)
    )
    engine.load()
    return engine


@pytest.fixture(scope="module")
def in_process() -> FasterWhisperEngine:
    return tiny("off")


@pytest.fixture(scope="module")
def pool() -> Iterator[ModelPool]:
    files = ModelFiles(resolve_whisper("tiny.en").location, "cpu", 0, "int8", 2)
    found = ModelPool(files, 1)
    found.wait_ready()
    yield found
    found.close()


@pytest.fixture(scope="module")
def batch(in_process: FasterWhisperEngine, sample_audio: Samples) -> tuple[np.ndarray, Any]:
    """The features of sample.wav's two 15-second halves, and their prompts."""
    model = in_process.model
    halves = np.split(sample_audio[: 30 * SAMPLE_RATE], 2)
    features = np.stack([pad_or_trim(model.feature_extractor(h)[..., :-1]) for h in halves])
    tokenizer = Tokenizer(model.hf_tokenizer, False, task="transcribe", language="en")
    prompt = model.get_prompt(tokenizer, [], without_timestamps=True)
    return features, [prompt, prompt]


def tokens(in_process: FasterWhisperEngine, batch: tuple[np.ndarray, Any]) -> list[list[int]]:
    """What the model in this process finds for `batch`."""
    features, prompts = batch
    model = in_process.model.model
    encoded = model.encode(ctranslate2.StorageView.from_array(features))
    return [r.sequences_ids[0] for r in model.generate(encoded, prompts, **SEARCH)]


def searched(pool: ModelPool, model: Any, batch: tuple[np.ndarray, Any]) -> list[list[int]]:
    features, prompts = batch
    with pool.lease(model, threading.Event()) as view:
        found = view.model.generate(view.model.encode(features), prompts, **SEARCH)
    assert all(r.sequences_ids[0] and 0 <= r.no_speech_prob <= 1 for r in found)
    return [r.sequences_ids[0] for r in found]


def test_a_child_finds_the_same_tokens_as_the_model_in_process(
    in_process: FasterWhisperEngine, pool: ModelPool, batch: tuple[np.ndarray, Any]
) -> None:
    assert searched(pool, in_process.model, batch) == tokens(in_process, batch)


def test_a_cancel_kills_the_call_in_flight_and_a_fresh_process_takes_over(
    in_process: FasterWhisperEngine, pool: ModelPool, batch: tuple[np.ndarray, Any]
) -> None:
    """The search is sent, then the stop seen at once: the child is killed (its
    search would take a second or more), and the next lease gets a fresh one."""
    features, prompts = batch
    (before,) = pool.pids
    stop = threading.Event()
    with pytest.raises(Stopped), pool.lease(in_process.model, stop) as view:
        encoded = view.model.encode(features)
        stop.set()
        started = time.perf_counter()
        view.model.generate(encoded, prompts, **SEARCH)
    assert time.perf_counter() - started < 0.5
    assert not Path(f"/proc/{before}").exists() and pool.pids != [before]
    assert searched(pool, in_process.model, batch) == tokens(in_process, batch)


def test_a_dead_model_process_fails_one_run_as_unavailable_then_is_replaced(
    in_process: FasterWhisperEngine, pool: ModelPool, batch: tuple[np.ndarray, Any]
) -> None:
    searched(pool, in_process.model, batch)
    os.kill(pool.pids[0], signal.SIGKILL)
    with pytest.raises(ModelProcessFailed, match="model process exited"):
        searched(pool, in_process.model, batch)
    assert searched(pool, in_process.model, batch) == tokens(in_process, batch)


def test_streams_in_a_child_give_the_same_segments_as_in_process(
    in_process: FasterWhisperEngine, sample_audio: Samples
) -> None:
    """The whole session (batched pass, language detection, review, live decoding) with
    `auto` on CPU; the service keeps no weights, only what it reads of the model."""
    child = tiny("auto")
    try:
        assert child.info().multilingual is False and child.info().languages == ("en",)
        for options in (TranscriptionOptions(), TranscriptionOptions(live=True)):
            texts = [transcript(e, options, sample_audio) for e in (in_process, child)]
            assert texts[0] == texts[1] and len(texts[0]) >= 10
    finally:
        child.close()


def transcript(
    engine: FasterWhisperEngine, options: TranscriptionOptions, audio: Samples
) -> list[tuple[str, float, float]]:
    session = engine.open_session(options)
    session.push(np.tile(audio, 2))
    items = session.run(True, threading.Event())
    return [(s.text, round(s.start, 2), round(s.end, 2)) for s in items if isinstance(s, Segment)]
