"""README.md's fenced code blocks, their test markers and the commands inside them.

Every block a reader might paste into a shell or an editor carries a marker comment on the
line directly above its opening fence, so that no instruction goes untested by accident:

- `<!-- readme-test: run -->`: a test executes the block (`tests/integration/
  test_readme_commands.py` against an orchestrator with fake backends; blocks that start
  `whospoke serve` or read its metrics by `tests/e2e/test_readme.py` on the real stack);
- `<!-- readme-test: node -->`: the Node client's tests compile it;
- `<!-- readme-test: illustrative (why) -->`: not executed, with the reason.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
CODE_LANGUAGES = frozenset({"ts", "typescript", "js", "javascript"})
MARKED_LANGUAGES = SHELL_LANGUAGES | CODE_LANGUAGES | {""}
"""Blocks that need a marker; an unlabelled block counts as a command until labelled `text`."""

FENCE = re.compile(r"^ *(```+|~~~+) *([\w+-]*)")
MARKER = re.compile(r"^ *<!-- readme-test: (run|node|illustrative \((?P<reason>.+)\)) -->\s*$")
SEPARATORS = frozenset({"|", "||", "&&", ";", "&", "(", ")"})
REDIRECTS = frozenset({">", ">>", "<", "<<", "<<<", ">&", "<&", ">|", "&>"})


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int
    """1-based line number of the opening fence."""
    language: str
    text: str
    marker: str | None
    """`run`, `node`, `illustrative`, or None when the line above is no marker."""
    reason: str = ""

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"

    @property
    def script(self) -> str:
        """What a shell runs: for `console` blocks only the `$ ` lines (and continuations)."""
        if self.language != "console":
            return self.text
        lines: list[str] = []
        continued = False
        for line in self.text.splitlines():
            if line.startswith("$ ") or continued:
                lines.append(line[2:] if line.startswith("$ ") else line)
                continued = line.endswith("\\")
        return "\n".join(lines) + "\n"

    @property
    def commands(self) -> list[list[str]]:
        """The simple commands of a shell block (none for other languages)."""
        return commands(self.script) if self.language in SHELL_LANGUAGES | {""} else []

    @property
    def needs_stack(self) -> bool:
        """Starts `whospoke serve` or reads the metrics it serves: needs the real services."""
        return "whospoke serve" in self.script or "/metrics" in self.script


def blocks(text: str | None = None) -> list[Block]:
    """The README's fenced blocks in order, each with the marker on the line above it."""
    lines = (README.read_text() if text is None else text).splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        above = MARKER.match(lines[index - 1]) if index else None
        marker = above.group(1).split(" ")[0] if above else None
        reason = (above.group("reason") or "") if above else ""
        body = "\n".join(lines[index + 1 : end]) + "\n"
        found.append(Block(index + 1, language, body, marker, reason))
        index = end + 1
    return found


def dangling_markers(text: str | None = None) -> list[int]:
    """Line numbers of markers that are not directly above an opening fence."""
    lines = (README.read_text() if text is None else text).splitlines()
    return [
        number + 1
        for number, line in enumerate(lines)
        if "readme-test:" in line
        and (
            MARKER.match(line) is None
            or number + 1 >= len(lines)
            or FENCE.match(lines[number + 1]) is None
        )
    ]


def logical_lines(script: str) -> list[str]:
    """Lines with backslash continuations joined and here-document bodies left out."""
    result: list[str] = []
    heredoc_end: str | None = None
    pending = ""
    for line in script.splitlines():
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        result.append(full)
        here = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", full)
        if here is not None:
            heredoc_end = here.group(1)
    return result


def commands(script: str) -> list[list[str]]:
    """Every simple command of a shell script as argv, redirections and comments removed."""
    found: list[list[str]] = []
    for line in logical_lines(script):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        argv: list[str] = []
        skip_next = False
        for token in lexer:
            if skip_next:
                skip_next = False
            elif token in SEPARATORS:
                if argv:
                    found.append(argv)
                argv = []
            elif token in REDIRECTS:
                skip_next = True
                if argv and argv[-1].isdigit():
                    argv.pop()
            else:
                argv.append(token)
        if argv:
            found.append(argv)
    return found


def program(argv: list[str]) -> str:
    """The command's program name without its directory (`.venv/bin/whospoke` → `whospoke`)."""
    return Path(argv[0]).name if argv else ""


def inline_code(text: str | None = None) -> list[str]:
    """Inline code spans outside fenced blocks, with line breaks inside a span folded."""
    source = README.read_text() if text is None else text
    prose = re.sub(r"^ *```.*?^ *```", "", source, flags=re.S | re.M)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
