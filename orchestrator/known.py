"""Recognising enrolled voices among a recording's diarized speakers: pure functions.

Each diarized speaker comes with the centroid of its embeddings; each enrolled
voice is the centroid of its enrollment recording's. A speaker takes a voice's
name when their cosine similarity reaches `THRESHOLD`, one speaker per voice and
one voice per speaker, best pairs first (two speakers can be one person's voice
split by the clustering; only the closer one takes the name, the other stays
anonymous rather than two people sharing a name). The threshold was chosen on the
dev clips and the Asterisk voices (bench/speakers_bench.py, BENCHMARKS.md "Known
speakers").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from orchestrator.store.speakers import Voice
from whospoke.contract.diarization import DiarizationOutput, SpeakerInfo, Turn

THRESHOLD = 0.65
"""Cosine similarity from which a speaker is taken for an enrolled voice. Voices enrolled
from one half of a person's speech scored 0.67-0.97 against the other half, different
people -0.16-0.51; a diarized speaker is less clean than an enrollment (the clustering
gives it some of the others' speech): in the Asterisk conversation, June's cluster
scored 0.63 against Allison's enrolled voice, so the threshold sits above that."""


@dataclass(frozen=True)
class Match:
    name: str
    similarity: float


def similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0 for an empty or zero vector."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size == 0 or x.shape != y.shape:
        return 0.0
    norms = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(np.dot(x, y) / norms) if norms else 0.0


def recognise(
    speakers: Sequence[SpeakerInfo], voices: Sequence[Voice], threshold: float = THRESHOLD
) -> dict[str, Match]:
    """Diarized label → the enrolled voice it is, for the speakers recognised."""
    pairs = sorted(
        (
            (similarity(s.embedding, v.embedding), s.speaker, v.name)
            for s in speakers
            if s.embedding
            for v in voices
        ),
        reverse=True,
    )
    matches: dict[str, Match] = {}
    named: set[str] = set()
    for score, label, name in pairs:
        if score < threshold:
            break
        if label not in matches and name not in named:
            matches[label] = Match(name, score)
            named.add(name)
    return matches


def relabel(
    output: DiarizationOutput, matches: Mapping[str, Match], keep_embeddings: bool
) -> DiarizationOutput:
    """`output` with recognised speakers under their names (and similarity); embeddings
    kept only when the client asked for them."""

    def name(label: str) -> str:
        return matches[label].name if label in matches else label

    def turns(items: Sequence[Turn]) -> tuple[Turn, ...]:
        return tuple(replace(t, speaker=name(t.speaker)) for t in items)

    speakers = tuple(
        replace(
            s,
            speaker=name(s.speaker),
            embedding=s.embedding if keep_embeddings else (),
            known_similarity=matches[s.speaker].similarity if s.speaker in matches else 0.0,
        )
        for s in output.speakers
    )
    return DiarizationOutput(turns(output.turns), turns(output.exclusive_turns), speakers)
