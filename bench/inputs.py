"""The benchmark inputs, built by code from packaged or shared data (nothing hand-made).

- `sample`: pyannote's `sample.wav` (30 s, 2 speakers) with its RTTM and transcript.
- `meeting(minutes)`: the ten 30 s clips of `../shared/data/diarization-dev` joined
  (their RTTM shifted alongside; labels are corpus-wide) and repeated to `minutes`.
- `short_pauses()`: the same clips joined with their pauses cut to 0.4 s.
- `conversation()`: Debian's Asterisk prompts in English, French and Spanish taking
  turns, with the reference RTTM and each turn's words generated alongside. The
  package credits one voice, Allison Smith, for the English and Spanish prompts and
  June Wallack for the French ones, so the RTTM has two speakers (CAM++ agrees:
  0.32 cosine distance between the en and es prompt centroids, 0.51-0.56 to fr).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Segment

from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.common.decode import decode_audio
from whospoke.evaluation import asterisk_prompts, sample_dir, sample_path, sample_transcript

DEV_DATA = Path(__file__).resolve().parent.parent.parent / "shared/data/diarization-dev"
LANGUAGES = ("en", "fr", "es")
VOICES = {"en": "Allison Smith", "fr": "June Wallack", "es": "Allison Smith"}
"""Who recorded each language's prompts (/usr/share/doc/asterisk-core-sounds-*/copyright)."""


@dataclass(frozen=True)
class Input:
    name: str
    audio: Samples
    reference: Annotation
    transcript: str = ""
    turns: tuple[tuple[float, float, str, str], ...] = ()
    """(start, end, language, words) of each reference turn, when known."""

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE


def sample() -> Input:
    from pyannote.database.util import load_rttm

    reference = load_rttm(str(sample_dir() / "sample.rttm"))["sample"]  # type: ignore[no-untyped-call]
    return Input("sample", decode_audio(sample_path()), reference, sample_transcript())


def clips(data: Path = DEV_DATA) -> list[tuple[Samples, Annotation]]:
    """The dev clips in name order, each with its reference."""
    rows: dict[str, list[tuple[float, float, str]]] = {}
    for line in (data / "reference.rttm").read_text().splitlines():
        f = line.split()
        rows.setdefault(f[1], []).append((float(f[3]), float(f[4]), f[7]))
    result = []
    for wav in sorted(data.glob("*.wav")):
        reference = Annotation(uri=wav.stem)
        for start, duration, speaker in rows.get(wav.stem, []):
            reference[Segment(start, start + duration)] = speaker
        result.append((decode_audio(wav), reference))
    return result


def joined(recordings: list[tuple[Samples, Annotation]]) -> tuple[Samples, Annotation]:
    """One recording of all, with their references shifted onto its timeline."""
    reference, offset = Annotation(uri="meeting"), 0.0
    for audio, part in recordings:
        for segment, _, speaker in part.itertracks(yield_label=True):
            reference[Segment(offset + segment.start, offset + segment.end)] = speaker
        offset += audio.size / SAMPLE_RATE
    return np.concatenate([audio for audio, _ in recordings]), reference


def meeting(minutes: float, data: Path = DEV_DATA) -> Input:
    audio, reference = joined(clips(data))
    length = int(minutes * 60 * SAMPLE_RATE)
    repeats = -(-length // audio.size)
    looped, looped_reference = joined([(audio, reference)] * repeats)
    return Input(
        f"meeting-{minutes:g}",
        np.ascontiguousarray(looped[:length]),
        looped_reference.crop(Segment(0, length / SAMPLE_RATE)),
    )


def shuffled_meeting(seed: int, data: Path = DEV_DATA) -> Input:
    """The ten dev clips joined in a seeded random order (`numpy.random.default_rng`):
    the same speech, speakers met in another order."""
    recordings = clips(data)
    order = np.random.default_rng(seed).permutation(len(recordings))
    audio, reference = joined([recordings[i] for i in order])
    return Input(f"meeting, order {seed}", audio, reference)


def short_pauses(max_pause: float = 0.4, data: Path = DEV_DATA) -> Input:
    """The joined dev clips with every pause between reference speech cut to `max_pause`
    seconds: meeting speech where a transcriber's pieces cannot wait for long silences."""
    audio, reference = joined(clips(data))
    parts: list[Samples] = []
    shortened = Annotation(uri="short-pauses")
    kept, previous = 0.0, 0.0
    for speech in reference.get_timeline().support():
        pause = min(speech.start - previous, max_pause)
        start = speech.start - pause
        parts.append(audio[round(start * SAMPLE_RATE) : round(speech.end * SAMPLE_RATE)])
        shift = start - kept
        for turn, _, speaker in reference.crop(speech).itertracks(yield_label=True):
            shortened[Segment(turn.start - shift, turn.end - shift)] = speaker
        kept += speech.end - start
        previous = speech.end
    return Input("short-pauses", np.concatenate(parts), shortened)


def conversation(prompts_per_speaker: int = 12, gap_seconds: float = 0.6) -> Input:
    """en, fr and es prompts taking turns (two voices), with reference RTTM and words."""
    prompts = {lang: asterisk_prompts(lang, prompts_per_speaker) for lang in LANGUAGES}
    gap = np.zeros(int(gap_seconds * SAMPLE_RATE), dtype=np.float32)
    parts: list[Samples] = [gap]
    reference = Annotation(uri="conversation")
    turns = []
    offset = gap_seconds
    for index in range(prompts_per_speaker):
        for lang in LANGUAGES:
            prompt = prompts[lang][index]
            end = offset + prompt.audio.size / SAMPLE_RATE
            reference[Segment(offset, end)] = VOICES[lang]
            turns.append((offset, end, lang, prompt.text))
            parts += [prompt.audio, gap]
            offset = end + gap_seconds
    transcript = " ".join(text for *_, text in turns)
    return Input("conversation", np.concatenate(parts), reference, transcript, tuple(turns))
