"""Orchestrator benchmark: `Process` over gRPC versus the sequential in-process baseline.

Input: the ten meeting clips of `../shared/data/diarization-dev` joined into one
5-minute recording (21 speakers), written as a WAV file and sent as bytes.
- whospoke: the three services as subprocesses (Whisper base, segmentation-3.0 +
  CAM++), one `Process` call; wall time and the time to the first transcript segment.
- baseline: in one process, faster-whisper transcribes the whole file, then pyannote's
  whole-file pipeline diarizes it: the usual WhisperX-style script.
Same models and the same thread count for every model in both.

Usage: .venv/bin/python bench/orchestrator_bench.py [--data DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import time
import wave
from pathlib import Path

import numpy as np

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.diarizer_bench import DEFAULT_DATA, clips, joined
from bench.report import machine, write_section
from whospoke.common.audio import SAMPLE_RATE, Samples, float_to_pcm
from whospoke.common.procs import ServiceProcess
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc


def wav(audio: Samples) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(float_to_pcm(audio))
    return buffer.getvalue()


async def whospoke(data: bytes, threads: int) -> dict[str, float]:
    transcriber = ServiceProcess.start("transcriber", ["--cpu-threads", str(threads)])
    diarizer = ServiceProcess.start("diarizer", ["--threads", str(threads)])
    backends = ["--transcriber", transcriber.address, "--diarizer", diarizer.address]
    orchestrator = ServiceProcess.start("orchestrator", backends)
    services = [transcriber, diarizer, orchestrator]
    try:
        await asyncio.gather(*(s.wait_serving(within=600) for s in services))
        async with orchestrator.channel() as channel:
            stub = pb_grpc.OrchestratorStub(channel)
            start = time.perf_counter()
            first = 0.0
            result = None
            async for event in stub.Process(pb.ProcessRequest(audio=data), timeout=3600):
                if event.HasField("segment") and not first:
                    first = time.perf_counter() - start
                if event.HasField("result"):
                    result = event.result
            total = time.perf_counter() - start
    finally:
        for s in reversed(services):
            s.stop()
    assert result is not None
    t = result.timings
    return {
        "total": total,
        "first_segment": first,
        "transcription": t.transcription_seconds,
        "diarization": t.diarization_seconds,
        "speakers": float(len(result.speakers)),
    }


def baseline(audio: Samples, threads: int) -> dict[str, float]:
    import torch
    from faster_whisper import WhisperModel

    from diarizer.baseline import diarize_whole, stock_pipeline
    from whospoke.common.models import resolve_whisper

    torch.set_num_threads(threads)
    model = WhisperModel(
        resolve_whisper("base").location, device="cpu", compute_type="int8", cpu_threads=threads
    )
    pipeline = stock_pipeline()
    start = time.perf_counter()
    segments, _ = model.transcribe(audio, vad_filter=True, word_timestamps=True)
    first = 0.0
    for _ in segments:
        first = first or time.perf_counter() - start
    transcribed = time.perf_counter()
    turns = diarize_whole(pipeline, audio).speaker_diarization
    end = time.perf_counter()
    return {
        "total": end - start,
        "first_segment": first,
        "transcription": transcribed - start,
        "diarization": end - transcribed,
        "speakers": float(len(turns.labels())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only-whospoke", action="store_true", help="skip the baseline")
    args = parser.parse_args()
    audio, _ = joined(clips(args.data))
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    duration = audio.size / SAMPLE_RATE
    ours = asyncio.run(whospoke(wav(audio), args.threads))
    print("whospoke", ours, flush=True)
    if args.only_whospoke:
        return
    base = baseline(audio, args.threads)
    print("baseline", base, flush=True)
    rows = []
    for label, r in (("sequential in-process baseline", base), ("whospoke `Process`", ours)):
        rows.append(
            f"| {label} | {r['total']:.1f} | {r['total'] / duration:.3f} | "
            f"{r['first_segment']:.1f} ({100 * r['first_segment'] / r['total']:.0f} %) | "
            f"{r['transcription']:.1f} | {r['diarization']:.1f} | {r['speakers']:.0f} |"
        )
    lines = [
        "Command: `python bench/orchestrator_bench.py`.",
        f"Machine: {machine()}; {args.threads} threads for each model.",
        f"Input: the dev clips joined, {duration:.0f} s, 21 speakers, sent as one WAV file. "
        "Models: Whisper base (int8), segmentation-3.0 + CAM++. The baseline transcribes the "
        "whole file with faster-whisper, then runs pyannote's whole-file pipeline.",
        "",
        "| path | wall time (s) | real-time factor | first segment (s, share of total) "
        "| transcription (s) | diarization (s) | speakers |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"whospoke / baseline wall time: {ours['total'] / base['total']:.2f}.",
    ]
    write_section("Orchestrator", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
