"""Code-switching: pieces cut into runs of one language, from scripted detections."""

from __future__ import annotations

from transcriber.languages import LanguageRun, plan_runs
from transcriber.windows import Region
from whospoke.common.audio import SAMPLE_RATE
from whospoke.contract.transcription import language_shares

S = SAMPLE_RATE
Detection = list[tuple[str, float]]


def utterance(start: float, end: float) -> Region:
    return Region(int(start * S), int(end * S))


def scripted(*answers: tuple[float, Detection]) -> dict[int, Detection]:
    """Detections keyed by the utterance's start sample."""
    return {int(start * S): detection for start, detection in answers}


def runs(
    spans: list[tuple[float, float]],
    answers: dict[int, Detection],
    spoken: tuple[str, ...] = (),
    size: float = 20.0,
) -> tuple[list[tuple[float, float, str]], list[str]]:
    planned, now = plan_runs(
        [utterance(*s) for s in spans], int(size * S), lambda u: answers[u.start], spoken
    )
    return [(r.start / S, r.end / S, r.language) for r in planned], now


def test_one_language_is_one_run() -> None:
    answers = scripted((0, [("en", 0.9)]), (3, [("en", 0.8)]), (6, [("en", 0.95)]))
    planned, spoken = plan_runs(
        [utterance(0, 2), utterance(3, 5), utterance(6, 8)], 10 * S, lambda u: answers[u.start]
    )
    assert planned == [LanguageRun(0, 10 * S, "en", (0.9 + 0.8 + 0.95) / 3)]
    assert spoken == ["en"]


def test_runs_cut_in_the_middle_of_the_pause_between_languages() -> None:
    answers = scripted(
        (1, [("en", 0.9)]), (4, [("es", 0.9)]), (8, [("es", 0.7)]), (12, [("fr", 0.85)])
    )
    planned, spoken = runs([(1, 3), (4, 7), (8, 11), (12, 15)], answers)
    assert planned == [(0, 3.5, "en"), (3.5, 11.5, "es"), (11.5, 20, "fr")]
    assert spoken == ["en", "es", "fr"]


def test_short_utterances_keep_the_language_in_use() -> None:
    """A "Sí." of 0.4 s does not switch the language."""
    answers = scripted((1, [("en", 0.9)]), (4, [("es", 0.99)]), (9, [("en", 0.9)]))
    assert runs([(1, 3), (4, 4.4), (9, 11)], answers)[0] == [(0, 20, "en")]


def test_a_new_language_needs_a_sure_detection() -> None:
    """Whisper calls a Spanish prompt Italian at 0.79: it goes to Spanish, already spoken;
    an unsure detection of a language already spoken changes nothing."""
    answers = scripted(
        (1, [("es", 0.9)]),
        (4, [("en", 0.95)]),
        (7, [("it", 0.79), ("es", 0.17), ("en", 0.01)]),
        (10, [("en", 0.45), ("es", 0.4)]),
    )
    planned, spoken = runs([(1, 3), (4, 6), (7, 9), (10, 12)], answers)
    assert planned == [(0, 3.5, "es"), (3.5, 6.5, "en"), (6.5, 20, "es")]
    assert spoken == ["en", "es"]


def test_the_language_carries_over_from_the_previous_piece() -> None:
    answers = scripted((2, [("fr", 0.6)]))
    assert runs([(0, 0.5), (2, 4)], answers, spoken=("fr", "es")) == (
        [(0, 1.25, "es"), (1.25, 20, "fr")],
        ["es", "fr"],
    )
    assert runs([], {}, spoken=("es",)) == ([(0, 20, "es")], ["es"])


def test_at_the_start_undecided_utterances_take_the_first_language_decided() -> None:
    """Far-field English detected as Welsh at 0.46 at the start decides nothing."""
    answers = scripted((0, [("cy", 0.46), ("en", 0.43)]), (3, [("en", 0.85)]))
    assert runs([(0, 2), (3, 6)], answers) == ([(0, 20, "en")], ["en"])
    assert runs([(0, 0.5)], {}) == ([(0, 20, "")], [])


def test_language_shares_rank_by_time() -> None:
    shares = language_shares([("es", 2.0), ("en", 5.0), ("es", 4.0), ("", 9.0), ("fr", 1.0)])
    assert [(s.language, s.seconds, round(s.share, 3)) for s in shares] == [
        ("es", 6.0, 0.5),
        ("en", 5.0, 0.417),
        ("fr", 1.0, 0.083),
    ]
    assert language_shares([]) == []
