"""`multilingual` travels from the client to the transcriber's engine, and languages come
back: per segment, in the transcriber's summary and in the result with their shares.

The real orchestrator and transcriber servicer over gRPC, with the fake engine
(whose segments carry the stream's language); the real model's code-switching is
tests/e2e/test_multilingual.py.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.backends import BackendSettings, GrpcTranscriber
from tests.fakes import FakeDiarizer, FakeTranscriptionEngine, serve, wav_bytes
from tests.integration.test_backend_errors import transcriber_server
from whospoke.cli.client import options_from_args
from whospoke.cli.main import parser
from whospoke.contract.results import result_to_dict
from whospoke.v1 import orchestrator_pb2 as pb


async def test_multilingual_reaches_the_engine_and_languages_come_back(tmp_path: Path) -> None:
    engine = FakeTranscriptionEngine()
    asked = [
        options_from_args(parser().parse_args(["process", "x.wav", "--multilingual"])),
        pb.ProcessOptions(multilingual=True, language="fr"),  # a language given wins
        pb.ProcessOptions(),
    ]
    results = []
    async with transcriber_server(engine) as address:
        transcriber = GrpcTranscriber(BackendSettings(address))
        async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
            for options in asked:
                request = pb.ProcessRequest(audio=wav_bytes(3), options=options)
                events = [e async for e in stub.Process(request, timeout=10)]
                results.append(events[-1].result)
        await transcriber.close()
    assert [s.options.multilingual for s in engine.sessions] == [True, False, False]
    first, french, _ = results
    assert {s.language for s in first.transcription_segments} == {"en"}
    assert {s.language for s in first.segments} == {"en"}
    assert [(x.language, round(x.share, 3)) for x in first.languages] == [("en", 1.0)]
    assert first.languages[0].seconds == sum(
        s.end_seconds - s.start_seconds for s in first.transcription_segments
    )
    assert french.language == "fr" and [x.language for x in french.languages] == ["fr"]
    shape = result_to_dict(first)
    assert shape["languages"][0]["language"] == "en"
    assert {s["language"] for s in shape["segments"]} == {"en"}
