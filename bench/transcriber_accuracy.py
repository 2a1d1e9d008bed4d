"""Transcriber accuracy: the incremental session versus faster-whisper on the whole file.

Word error rate (jiwer, normalised: case, accents, punctuation, small numbers) on
pyannote's sample.wav and 16 Debian Asterisk prompts in English, French and Spanish,
for the whole file at once and for the session fed at full speed (everything
buffered) or live (1 s chunks, transcribing after each).

Usage: .venv/bin/python bench/transcriber_accuracy.py [--model base] [--count 16]
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import machine, write_section
from transcriber.config import ModelConfig
from transcriber.engine import FasterWhisperEngine
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.common.decode import decode_audio
from whospoke.contract.transcription import Segment, TranscriptionOptions
from whospoke.evaluation import (
    asterisk_available,
    asterisk_recording,
    sample_path,
    sample_transcript,
    word_error_rate,
)


def streamed(engine: FasterWhisperEngine, audio: Samples, language: str | None, step: int) -> str:
    live = step < audio.size  # fed in small steps: as a live stream would be
    session = engine.open_session(TranscriptionOptions(language=language, live=live))
    stop = threading.Event()
    texts = []
    for start in range(0, audio.size, step):
        session.push(audio[start : start + step])
        texts += [s.text for s in session.run(False, stop) if isinstance(s, Segment)]
    texts += [s.text for s in session.run(True, stop) if isinstance(s, Segment)]
    return "".join(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="base")
    parser.add_argument("--count", type=int, default=16)
    args = parser.parse_args()
    engine = FasterWhisperEngine(ModelConfig(model=args.model, cpu_threads=2, model_process="off"))
    engine.load()
    sets: list[tuple[str, Samples, str, str | None]] = [
        ("sample.wav (en, 2 speakers)", decode_audio(sample_path()), sample_transcript(), None)
    ]
    for code in ("en", "fr", "es"):
        if asterisk_available(code):
            rec = asterisk_recording(code, count=args.count)
            sets.append((f"Asterisk {code}", rec.audio, rec.transcript, code))
    lines = [
        f"Command: `python bench/transcriber_accuracy.py` (Whisper {args.model}, int8, CPU, "
        f"beam 5; {args.count} Asterisk prompts per language; language given except for "
        "sample.wav).",
        f"Machine: {machine()}.",
        "",
        "| input | audio (s) | whole file | streamed, full speed | streamed, live 1 s chunks |",
        "|---|---|---|---|---|",
    ]
    for label, audio, reference, language in sets:
        segments, _ = engine.model.transcribe(audio, language=language, vad_filter=True)
        whole = "".join(s.text for s in segments)
        full = streamed(engine, audio, language, audio.size)
        live = streamed(engine, audio, language, SAMPLE_RATE)
        wers = [word_error_rate(reference, text, language or "en") for text in (whole, full, live)]
        row = f"| {label} | {audio.size / SAMPLE_RATE:.0f} | " + " | ".join(
            f"{w:.3f}" for w in wers
        )
        lines.append(row + " |")
        print(row, flush=True)
    write_section("Transcriber accuracy", "\n".join(lines))


if __name__ == "__main__":
    main()
