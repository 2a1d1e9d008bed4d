"""`whospoke process`'s checks before anything is sent: flags, formats, files, speakers.

A request that cannot produce the output asked for (an RTTM without diarization,
subtitles without a transcript), or a file that cannot be sent (missing, a
directory, empty), would otherwise cost a round trip and come back as silence or
as protocol wording; here each is a usage error that names the flag or the path.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

from whospoke.cli.errors import UsageError

NEEDS = {
    "json": frozenset[str](),
    "srt": frozenset({"transcription"}),
    "vtt": frozenset({"transcription"}),
    "txt": frozenset({"transcription"}),
    "rttm": frozenset({"diarization"}),
}
"""The stages each output format is made of (see formats.py): JSON shows whatever ran."""
SPEAKERS_PER_WINDOW = 3
WINDOW_SECONDS = 10.0
"""The diarizer's segmentation model tells at most 3 speakers apart in each 10 s window."""


def check_options(args: argparse.Namespace) -> None:
    """Flag combinations that cannot work, each a usage error naming the flags."""
    skipped = {"transcription": args.no_transcription, "diarization": args.no_diarization}
    if all(skipped.values()):
        raise UsageError(
            "--no-transcription and --no-diarization leave nothing to do", "Give at most one."
        )
    for stage in sorted(NEEDS[args.format]):
        if skipped[stage]:
            raise UsageError(
                f"--format {args.format} needs the {stage}, which --no-{stage} turns off",
                "Use --format json, or drop --no-" + stage + ".",
            )
    if args.no_diarization:
        _not_with(
            "--no-diarization",
            _given(args, "speakers", "min_speakers", "max_speakers", "known_speakers"),
        )
        _not_with("--no-diarization", ["--require-diarization"] if args.require_diarization else [])
    if args.no_transcription:
        given = _given(args, "language", "model", "prompt", "hotwords", "temperature")
        _not_with("--no-transcription", given + (["--multilingual"] if args.multilingual else []))
    if args.multilingual and args.language:
        _not_with("--language", ["--multilingual"])
    check_speakers(args.speakers, args.min_speakers, args.max_speakers)
    if args.temperature is not None and not 0 <= args.temperature <= 1:
        raise UsageError(
            f"--temperature must be between 0 and 1, got {args.temperature:g}",
            "Leave it out (0) for the same text on every run.",
        )
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(
            f"--timeout must be more than 0 seconds, got {args.timeout:g}",
            "Leave it out to wait as long as the job takes.",
        )


def _given(args: argparse.Namespace, *names: str) -> list[str]:
    return ["--" + n.replace("_", "-") for n in names if getattr(args, n) is not None]


def _not_with(flag: str, others: list[str]) -> None:
    if others:
        raise UsageError(f"{others[0]} has no effect with {flag}", "Drop one of them.")


def check_speakers(exact: int | None, low: int | None, high: int | None) -> None:
    """Speaker counts are at least 1, `--speakers` excludes a range, and min ≤ max."""
    for flag, value in (("--speakers", exact), ("--min-speakers", low), ("--max-speakers", high)):
        if value is not None and value < 1:
            raise UsageError(
                f"{flag} must be at least 1, got {value}",
                "Leave the speaker counts out to let the diarizer decide.",
            )
    if exact is not None and (low is not None or high is not None):
        raise UsageError(
            "--speakers cannot be combined with --min-speakers or --max-speakers",
            "Give an exact count or a range.",
        )
    if low is not None and high is not None and low > high:
        raise UsageError(
            f"--min-speakers {low} is more than --max-speakers {high}", "Swap or widen them."
        )


def input_file(text: str) -> Path:
    """The recording to send: it exists, is a readable file, and is not empty."""
    path = Path(text).expanduser()
    with _readable(text), path.open("rb") as file:
        first = file.read(1)
    if not first:
        raise UsageError(f"{text} is empty (0 bytes)", "Give a recording with audio in it.")
    return path


def read_input(path: Path) -> bytes:
    """The recording's bytes; a file removed or emptied since it was checked is still exit 2."""
    with _readable(str(path)):
        data = path.read_bytes()
    if not data:
        raise UsageError(f"{path} is empty (0 bytes)", "Give a recording with audio in it.")
    return data


@contextlib.contextmanager
def _readable(text: str) -> Iterator[None]:
    """Local file errors as one-line usage errors with a hint."""
    try:
        yield
    except FileNotFoundError:
        raise UsageError(f"no such file: {text}", "Check the path.") from None
    except IsADirectoryError:
        raise UsageError(f"{text} is a directory", "Give an audio or video file.") from None
    except OSError as error:
        raise UsageError(
            f"cannot read {text} ({error.strerror})", "Check its permissions."
        ) from None


def output_file(text: str | None) -> Path | None:
    """`--output`'s folder exists, so that a typo does not cost the whole job."""
    if text is None:
        return None
    path = Path(text).expanduser()
    if path.is_dir():
        raise UsageError(f"--output {text} is a directory", "Give a file name.")
    if not path.parent.is_dir():
        raise UsageError(f"--output: no such folder: {path.parent}", "Create it first.")
    return path


def speaker_warning(path: Path, exact: int | None, low: int | None) -> str:
    """A warning when more speakers are asked for than the recording can hold; or ''.

    The bound comes from the diarizer's segmentation model, which tells at most 3
    speakers apart in each 10 s window: a file of D seconds cannot yield more than
    3 per started 10 s. Only the lower bound (`--speakers`, `--min-speakers`) can be
    impossible; `--max-speakers` merely caps. The duration comes from the container
    header (cheap; a header that lies only costs a warning).
    """
    wanted = exact if exact is not None else low
    if wanted is None:
        return ""
    duration = header_duration(path)
    if duration is None or duration <= 0:
        return ""
    most = SPEAKERS_PER_WINDOW * max(1, math.ceil(duration / WINDOW_SECONDS))
    if wanted <= most:
        return ""
    flag = "--speakers" if exact is not None else "--min-speakers"
    return (
        f"whospoke: warning: {flag} {wanted} is more than a {duration:.1f} s recording can "
        f"hold (at most {most}: the diarizer tells at most {SPEAKERS_PER_WINDOW} speakers "
        f"apart per {WINDOW_SECONDS:g} s); expect fewer speakers"
    )


def header_duration(path: Path) -> float | None:
    """The duration the container declares, without decoding; None when unknown."""
    import av  # only when speaker counts are given: PyAV takes a moment to import

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if container.duration is not None:
                return float(container.duration) / av.time_base
            stream = container.streams.audio[0] if container.streams.audio else None
            if stream is not None and stream.duration is not None and stream.time_base:
                return float(stream.duration * stream.time_base)
    except (av.FFmpegError, OSError, ValueError):
        return None
    return None
