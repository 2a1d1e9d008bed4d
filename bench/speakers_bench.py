"""Known speakers: how well an enrolled voice is told apart from other voices.

The diarizer (segmentation-3.0 + CAM++, in-process) embeds recordings of one person
the way `EnrollSpeaker` does, and the cosine similarity of two such voices is
scored for pairs of the same person (genuine) and of different people (impostors):

- dev clips (AMI meetings, `../shared/data/diarization-dev`): each reference speaker
  with at least 6 s of speech alone, split into its first and second half; a voice
  enrolled from one half against every other half (the labels are corpus-wide, so a
  person met in two clips pairs across them too);
- Asterisk prompts: Allison Smith (English and Spanish) and June Wallack (French),
  enrolled from prompts 13-20 of each language and tested on prompts 21-28.

For each threshold: the false-accept rate (impostor pairs at or above it) and the
false-reject rate (genuine pairs below it). Then the product path: Allison and
June enrolled, the conversation (prompts 1-12 of each language) diarized, and the
share of each voice's reference speech whose diarized speaker took its name, with
the threshold in `orchestrator/known.py`; and with only Allison enrolled, June's
speech must stay anonymous. Usage: python bench/speakers_bench.py
"""

from __future__ import annotations

import sys
import threading
from itertools import product
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Segment, Timeline

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import LANGUAGES, VOICES, clips, conversation
from bench.outcome import annotation
from bench.report import machine, write_section
from diarizer.engine import DiarizerModelConfig, PyannoteEngine
from orchestrator.known import THRESHOLD, recognise, relabel, similarity
from orchestrator.speakers import enrolled_voice
from orchestrator.store.speakers import Voice
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.contract.diarization import DiarizationOptions, DiarizationOutput
from whospoke.evaluation import asterisk_prompts

MIN_ALONE_SECONDS = 5.0
THRESHOLDS = [round(t, 2) for t in np.arange(0.30, 0.86, 0.05)]


def diarize(engine: PyannoteEngine, audio: Samples) -> DiarizationOutput:
    session = engine.open_session(DiarizationOptions(return_embeddings=True))
    session.push(audio)
    for _ in session.run(True, threading.Event()):
        pass
    return session.finish()


def voice(engine: PyannoteEngine, name: str, audio: Samples) -> Voice | None:
    try:
        return enrolled_voice(name, diarize(engine, audio).speakers, "cam++")
    except Exception as error:  # too little speech, or two voices found in a half
        print(f"  {name}: not enrolled ({error})", flush=True)
        return None


def cut(audio: Samples, timeline: Timeline) -> Samples:
    parts = [audio[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)] for s in timeline]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def halves(reference: Annotation, label: str) -> tuple[Timeline, Timeline]:
    """The speaker's speech without overlap, split where half of it has passed."""
    alone = reference.label_timeline(label).extrude(reference.get_overlap()).support()
    total, running = alone.duration(), 0.0
    first: list[Segment] = []
    second: list[Segment] = []
    for segment in alone:
        (first if running < total / 2 else second).append(segment)
        running += segment.duration
    return Timeline(first), Timeline(second)


def clip_voices(engine: PyannoteEngine) -> list[tuple[str, Voice, Voice]]:
    """(person, voice of the first half, voice of the second) per dev-clip speaker."""
    found = []
    for index, (audio, reference) in enumerate(clips()):
        for label in reference.labels():
            first, second = halves(reference, label)
            if first.duration() + second.duration() < MIN_ALONE_SECONDS:
                continue
            a = voice(engine, f"{label}@{index}a", cut(audio, first))
            b = voice(engine, f"{label}@{index}b", cut(audio, second))
            if a and b:
                found.append((label, a, b))
    return found


def prompt_voices(engine: PyannoteEngine) -> list[tuple[str, Voice, Voice]]:
    found = []
    for lang in LANGUAGES:
        prompts = asterisk_prompts(lang, 28)
        gap = np.zeros(SAMPLE_RATE // 2, np.float32)
        enroll = np.concatenate([x for p in prompts[12:20] for x in (p.audio, gap)])
        test = np.concatenate([x for p in prompts[20:28] for x in (p.audio, gap)])
        a, b = voice(engine, f"{lang}-a", enroll), voice(engine, f"{lang}-b", test)
        if a and b:
            found.append((VOICES[lang], a, b))
    return found


def scores(voices: list[tuple[str, Voice, Voice]]) -> tuple[list[float], list[float]]:
    """Genuine and impostor similarities of every enrolled half against every tested half."""
    genuine: list[float] = []
    impostor: list[float] = []
    for (p, a, _), (q, _, b) in product(voices, voices):
        (genuine if p == q else impostor).append(similarity(a.embedding, b.embedding))
    return genuine, impostor


def named_share(
    engine: PyannoteEngine, voices: list[Voice], talk: Annotation, output: DiarizationOutput
) -> dict[str, float]:
    """Share of each reference voice's speech whose diarized speaker took that voice's name."""
    named = relabel(output, recognise(output.speakers, voices), keep_embeddings=False)
    hypothesis = annotation(named.exclusive_turns)
    shares = {}
    for person in talk.labels():
        speech = talk.label_timeline(person)
        mine = hypothesis.label_timeline(person.split()[0]).crop(speech)
        shares[person] = mine.duration() / speech.duration()
    return shares


def main() -> None:
    engine = PyannoteEngine(DiarizerModelConfig(device="cpu", threads=2))
    engine.load()
    voices = clip_voices(engine) + prompt_voices(engine)
    genuine, impostor = scores(voices)
    accepts, rejects = np.array(impostor), np.array(genuine)
    rows = [
        f"| {t:.2f} | {np.mean(accepts >= t):.1%} | {np.mean(rejects < t):.1%} |"
        for t in THRESHOLDS
    ]
    talk = conversation()
    output = diarize(engine, talk.audio)
    enrolled = {
        name: voice(engine, name.split()[0], audio) for name, audio in enrollment_audio().items()
    }
    both = named_share(engine, [v for v in enrolled.values() if v], talk.reference, output)
    clusters = "; ".join(
        f"{s.speaker} ({s.speech_seconds:.0f} s): "
        + ", ".join(
            f"{v.name} {similarity(s.embedding, v.embedding):.2f}" for v in enrolled.values() if v
        )
        for s in output.speakers
    )
    allison = enrolled["Allison Smith"]
    alone = named_share(engine, [allison] if allison else [], talk.reference, output)
    lines = [
        "Command: `python bench/speakers_bench.py`.",
        f"Machine: {machine()}.",
        "Embeddings: CAM++ centroids from the diarizer (segmentation-3.0), as `EnrollSpeaker` "
        f"makes them. {len(voices)} voices (each enrolled from one half of a person's speech "
        f"and tested on the other): {len(genuine)} genuine pairs, {len(impostor)} impostor "
        f"pairs (similarities: genuine {min(genuine):.2f}-{max(genuine):.2f}, median "
        f"{np.median(genuine):.2f}; impostor {min(impostor):.2f}-{max(impostor):.2f}, median "
        f"{np.median(impostor):.2f}).",
        "",
        "| threshold | false accepts (impostor pairs named) "
        "| false rejects (genuine pairs missed) |",
        "|---|---|---|",
        *rows,
        "",
        f"Threshold in use: **{THRESHOLD:.2f}** (`orchestrator/known.py`).",
        "",
        "In the conversation (prompts 1-12 of each language), with the voices enrolled from "
        "prompts 13-20: share of each voice's speech named after it: "
        + ", ".join(f"{k} {v:.1%}" for k, v in both.items())
        + ". With only Allison Smith enrolled: "
        + ", ".join(f"{k} {v:.1%}" for k, v in alone.items())
        + " (June Wallack's own speaker must stay anonymous; what is named here is her speech "
        "the diarizer gave to Allison's speaker). The diarized speakers against the enrolled "
        f"voices: {clusters}. A share below 100 % is the diarization's: every speaker took "
        "the right name, but the clustering gave part of a voice's speech to the other "
        "speaker.",
    ]
    print("\n".join(lines), flush=True)
    write_section("Known speakers", "\n".join(lines))


def enrollment_audio() -> dict[str, Samples]:
    """Allison (English prompts 13-20) and June (French prompts 13-20)."""
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    return {
        VOICES[lang]: np.concatenate(
            [x for p in asterisk_prompts(lang, 20)[12:20] for x in (p.audio, gap)]
        )
        for lang in ("en", "fr")
    }


if __name__ == "__main__":
    main()
