"""The CLI's output formats parse with real parsers (FFmpeg for subtitles, pyannote for RTTM)."""

from __future__ import annotations

import json
from pathlib import Path

import av
from av.subtitles.subtitle import AssSubtitle

from whospoke.cli.main import parser
from whospoke.contract.renderings import render
from whospoke.v1 import diarizer_pb2
from whospoke.v1 import orchestrator_pb2 as pb


def result() -> pb.ProcessResult:
    def seg(start: float, end: float, who: str, text: str) -> pb.AttributedSegment:
        word = pb.AttributedWord(start_seconds=start, end_seconds=end, text=f" {text}", speaker=who)
        return pb.AttributedSegment(
            start_seconds=start, end_seconds=end, speaker=who, text=text, words=[word]
        )

    return pb.ProcessResult(
        text="hello & co welcome back",
        segments=[
            seg(0.5, 1.25, "SPEAKER_00", "hello & co"),
            seg(1.25, 3723.5, "SPEAKER_01", "welcome"),
            seg(3724.0, 3725.0, "SPEAKER_01", "back"),
        ],
        diarization_turns=[
            diarizer_pb2.SpeakerTurn(start_seconds=0.4, end_seconds=1.25, speaker="SPEAKER_00"),
            diarizer_pb2.SpeakerTurn(start_seconds=1.25, end_seconds=3725, speaker="SPEAKER_01"),
        ],
        language="en",
        audio_duration_seconds=3726.0,
    )


def subtitles(path: Path) -> list[tuple[float, float, str]]:
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        cues = []
        for packet in container.demux(stream):
            for subtitle in packet.decode():
                assert isinstance(subtitle, AssSubtitle)
                assert packet.pts is not None and packet.duration is not None
                assert stream.time_base is not None
                start = float(packet.pts * stream.time_base)
                end = start + float(packet.duration * stream.time_base)
                text = bytes(subtitle.dialogue).decode()
                cues.append((round(start, 3), round(end, 3), text))
        return cues


def test_srt_and_vtt_parse_with_timings_and_speakers(tmp_path: Path) -> None:
    for fmt in ("srt", "vtt"):
        path = tmp_path / f"out.{fmt}"
        path.write_text(render(result(), fmt))
        cues = subtitles(path)
        assert [(start, end) for start, end, _ in cues] == [
            (0.5, 1.25),
            (1.25, 3723.5),
            (3724.0, 3725.0),
        ]
        assert "hello & co" in cues[0][2]
        assert fmt == "vtt" or "[SPEAKER_00]" in cues[0][2]
    assert "01:02:03,500" in render(result(), "srt")
    assert "<v SPEAKER_00>hello &amp; co" in render(result(), "vtt")


def test_rttm_json_and_text(tmp_path: Path) -> None:
    from pyannote.database.util import load_rttm

    path = tmp_path / "out.rttm"
    path.write_text(render(result(), "rttm", uri="my meeting"))
    annotation = load_rttm(str(path))["my_meeting"]  # type: ignore[no-untyped-call]
    assert sorted(annotation.labels()) == ["SPEAKER_00", "SPEAKER_01"]
    data = json.loads(render(result(), "json"))
    assert data["segments"][0]["words"][0] == {
        "start": 0.5,
        "end": 1.25,
        "word": "hello & co",
        "probability": 0.0,
        "speaker": "SPEAKER_00",
    }
    assert data["duration"] == 3726.0 and len(data["diarization_segments"]) == 2
    assert render(result(), "txt") == "SPEAKER_00: hello & co\nSPEAKER_01: welcome back\n"


def test_cli_flags_map_to_process_options() -> None:
    from whospoke.cli.client import options_from_args

    args = parser().parse_args(["process", "x.wav", "--min-speakers", "2", "--language", "fr"])
    options = options_from_args(args)
    assert options.min_speakers == 2 and not options.HasField("num_speakers")
    assert options.language == "fr" and not options.skip_diarization
