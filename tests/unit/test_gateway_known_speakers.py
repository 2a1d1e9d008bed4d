"""OpenAI's `known_speaker_names[]` / `known_speaker_references[]` as `ProcessOptions`."""

from __future__ import annotations

import base64

import pytest

from gateway.errors import ApiError
from gateway.forms import Fields, transcription

WAV = b"RIFF....WAVEfmt "


def data_url(payload: bytes) -> str:
    return "data:audio/wav;base64," + base64.b64encode(payload).decode()


def test_names_with_references_become_voices_for_the_job() -> None:
    fields = Fields(
        response_format="diarized_json",
        known_speaker_names=("Agent", "Customer"),
        known_speaker_references=(data_url(WAV), data_url(WAV + b"2")),
    )
    options = transcription(fields).options
    assert [(r.name, r.audio) for r in options.known_speaker_references] == [
        ("Agent", WAV),
        ("Customer", WAV + b"2"),
    ]
    assert not options.known_speakers


def test_names_alone_pick_enrolled_voices() -> None:
    options = transcription(Fields(diarize=True, known_speaker_names=("Alice",))).options
    assert list(options.known_speakers) == ["Alice"] and not options.known_speaker_references


@pytest.mark.parametrize(
    ("references", "message"),
    [
        ((data_url(WAV), data_url(WAV)), "2 references for 1 known_speaker_names"),
        (("https://example.com/a.wav",), "[0] is not a base64 data URL"),
        (("data:audio/wav;base64,@@@",), "[0] is not valid base64"),
    ],
)
def test_bad_references_are_a_400_naming_the_field(
    references: tuple[str, ...], message: str
) -> None:
    fields = Fields(
        diarize=True, known_speaker_names=("Agent",), known_speaker_references=references
    )
    with pytest.raises(ApiError) as caught:
        transcription(fields)
    assert caught.value.param == "known_speaker_references"
    assert message in str(caught.value)


def test_known_speakers_turn_diarization_on_unless_it_is_turned_off() -> None:
    assert not transcription(Fields(known_speaker_names=("A",))).options.skip_diarization
    with pytest.raises(ApiError) as caught:
        transcription(Fields(diarize=False, known_speaker_names=("A",)))
    assert caught.value.param == "known_speaker_names"
