"""Recognising enrolled voices: one name per speaker and one speaker per name, best first."""

from __future__ import annotations

from orchestrator.known import Match, recognise, relabel, similarity
from orchestrator.store.speakers import Voice
from whospoke.contract.diarization import DiarizationOutput, SpeakerInfo, Turn


def voice(name: str, *embedding: float) -> Voice:
    return Voice(name, embedding, "cam++", 10.0, 0.0)


def test_similarity_is_the_cosine_and_zero_for_what_cannot_compare() -> None:
    assert similarity((1, 0), (1, 0)) == 1.0
    assert similarity((1, 1), (1, 0)) == 0.7071067811865475
    assert similarity((), ()) == 0.0
    assert similarity((1, 0, 0), (1, 0)) == 0.0
    assert similarity((0, 0), (1, 0)) == 0.0


def test_each_voice_names_at_most_one_speaker_and_the_best_pair_wins() -> None:
    speakers = [
        SpeakerInfo("SPEAKER_00", 10, (1.0, 0.2)),  # Alice, split in two by the clustering
        SpeakerInfo("SPEAKER_01", 5, (1.0, 0.0)),
        SpeakerInfo("SPEAKER_02", 5, (0.0, 1.0)),  # someone not enrolled
        SpeakerInfo("SPEAKER_03", 5, ()),  # no embedding: never named
    ]
    matches = recognise(speakers, [voice("Alice", 1.0, 0.0), voice("Bob", 0.6, 0.8)], 0.6)
    assert matches == {"SPEAKER_01": Match("Alice", 1.0), "SPEAKER_02": Match("Bob", 0.8)}
    assert recognise(speakers, [voice("Bob", 0.6, 0.8)], 0.81) == {}


def test_relabel_renames_turns_and_speakers_and_drops_unasked_embeddings() -> None:
    output = DiarizationOutput(
        (Turn(0, 1, "SPEAKER_00"), Turn(1, 2, "SPEAKER_01")),
        (Turn(0, 1, "SPEAKER_00"),),
        (SpeakerInfo("SPEAKER_00", 1, (1.0,)), SpeakerInfo("SPEAKER_01", 1, (0.5,))),
    )
    named = relabel(output, {"SPEAKER_00": Match("Alice", 0.9)}, keep_embeddings=False)
    assert [t.speaker for t in named.turns] == ["Alice", "SPEAKER_01"]
    assert [t.speaker for t in named.exclusive_turns] == ["Alice"]
    assert named.speakers == (
        SpeakerInfo("Alice", 1, (), 0.9),
        SpeakerInfo("SPEAKER_01", 1, (), 0.0),
    )
    kept = relabel(output, {}, keep_embeddings=True)
    assert [s.embedding for s in kept.speakers] == [(1.0,), (0.5,)]
